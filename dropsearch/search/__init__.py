"""Search spaces, the pattern codec and the job spec. Imports neither torch nor Ray (the API layer uses it)."""

from dropsearch.search.builtin import DEFAULT_RATES, DEFAULT_VARIANTS, build_space, variant_sites
from dropsearch.search.catalog import DATASETS, MODELS, dataset_names, model_names
from dropsearch.search.codec import canonical_tokens, pattern_to_tokens, relevant_decisions, tokens_to_pattern
from dropsearch.search.reward import trial_reward
from dropsearch.search.space import Decision, SearchSpace
from dropsearch.search.spec import (
    SEARCH_SPEC_EXAMPLE,
    BudgetSpec,
    ControllerSpec,
    DatasetRef,
    ModelRef,
    ObjectiveSpec,
    ResourcesSpec,
    SearchSpec,
    SpaceSpec,
)

__all__ = [
    "DATASETS",
    "DEFAULT_RATES",
    "DEFAULT_VARIANTS",
    "MODELS",
    "SEARCH_SPEC_EXAMPLE",
    "BudgetSpec",
    "ControllerSpec",
    "DatasetRef",
    "Decision",
    "ModelRef",
    "ObjectiveSpec",
    "ResourcesSpec",
    "SearchSpace",
    "SearchSpec",
    "SpaceSpec",
    "build_space",
    "canonical_tokens",
    "dataset_names",
    "model_names",
    "pattern_to_tokens",
    "relevant_decisions",
    "trial_reward",
    "tokens_to_pattern",
    "variant_sites",
]
