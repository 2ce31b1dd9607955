"""The job spec: the body of ``POST /v1/searches`` (docs/SEARCH.md, "The job spec"), as pydantic v2 models.

Only ``model`` and ``dataset`` are required; unknown fields are refused everywhere (``extra="forbid"``). Every
validation error names its field: pydantic puts it in ``loc`` and the custom validators repeat it in the message.
Service caps (e.g. the most trials one owner may ask for) are checked by the API layer, not here.

Example::

    >>> spec = SearchSpec.model_validate({"model": {"name": "convnet"}, "dataset": {"name": "digits"}})
    >>> spec.budget.trials, spec.controller.name
    (64, 'reinforce')
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from dropsearch.regularizers.pattern import VARIANTS, check_rate, is_variant, variant_names
from dropsearch.search.builtin import DEFAULT_RATES, DEFAULT_VARIANTS
from dropsearch.search.catalog import check_name

__all__ = [
    "ModelRef",
    "DatasetRef",
    "SpaceSpec",
    "ControllerSpec",
    "BudgetSpec",
    "ResourcesSpec",
    "ObjectiveSpec",
    "SearchSpec",
    "SEARCH_SPEC_EXAMPLE",
    "TrainingSpec",
    "BaselineSpec",
    "ValidationSpec",
    "VALIDATION_SEED_OFFSET",
    "validation_trials",
]

_STRICT = ConfigDict(extra="forbid")
_DECISION_KEY = re.compile(r"^(\*|[A-Za-z0-9_.\-]+)(/[A-Za-z0-9_.\-]+)?$")

SEARCH_SPEC_EXAMPLE: dict[str, Any] = {
    "name": "digits-convnet",
    "model": {"name": "convnet", "params": {}},
    "dataset": {"name": "digits", "params": {}},
    "space": {"variants": list(DEFAULT_VARIANTS), "rates": list(DEFAULT_RATES), "choices": {"*/size": [1, 3, 5]}},
    "controller": {
        "name": "reinforce",
        "batch_size": 8,
        "lr": 0.0035,
        "entropy_weight": 0.0001,
        "baseline_decay": 0.95,
    },
    "budget": {
        "trials": 64,
        "epochs_per_trial": 5,
        "max_concurrent": 2,
        "early_stopping": "asha",
        "grace_epochs": None,
        "time_limit_s": None,
    },
    "resources": {"cpus_per_trial": 1, "gpus_per_trial": 0, "workers_per_trial": 1},
    "objective": {"metric": "val_accuracy", "mode": "max", "last_k": 1},
    "training": {"batch_size": 64, "lr": 0.001, "optimizer": "adam", "weight_decay": 0.0, "device": "auto"},
    "validation": {"enabled": True, "top_k": 3, "baselines": [{"variant": "none"}], "seeds": 3, "racing": True},
    "seed": 0,
}


class ModelRef(BaseModel):
    """Which child model to train: a built-in or plugin name (see :mod:`dropsearch.search.catalog`) and its params."""

    model_config = _STRICT
    name: str = Field(description="model name, e.g. 'convnet'")
    params: dict[str, Any] = Field(default_factory=dict, description="model constructor arguments")

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        return check_name(v, kind="model", field="model.name")


class DatasetRef(BaseModel):
    """Which dataset; ``params`` may name domains, e.g. ``{"train_domains": [0, 15], "test_domains": [60]}``."""

    model_config = _STRICT
    name: str = Field(description="dataset name, e.g. 'digits'")
    params: dict[str, Any] = Field(default_factory=dict, description="dataset arguments (splits, domains, path)")

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        return check_name(v, kind="dataset", field="dataset.name")


class SpaceSpec(BaseModel):
    """What to search: variants, per-site rates, and optional restrictions of any decision's choices."""

    model_config = _STRICT
    variants: list[str] = Field(
        default_factory=lambda: list(DEFAULT_VARIANTS), description="registered variant names (see GET /v1/catalog)"
    )
    rates: list[float] = Field(default_factory=lambda: list(DEFAULT_RATES), description="per-site rates in [0, 1)")
    choices: dict[str, list[Any]] = Field(
        default_factory=dict,
        description="decision name (or '*/suffix' for every site) -> allowed subset of its choices",
    )

    @field_validator("variants")
    @classmethod
    def _variants(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("space.variants must not be empty")
        for name in v:
            if not is_variant(name):
                known = ", ".join(variant_names())
                raise ValueError(f"space.variants: unknown variant {name!r}; expected one of {known}")
        if len(set(v)) != len(v):
            raise ValueError(f"space.variants has duplicates: {v}")
        return v

    @field_validator("rates")
    @classmethod
    def _rates(cls, v: list[float]) -> list[float]:
        if not v:
            raise ValueError("space.rates must not be empty")
        out = [check_rate(r, name="space.rates entry") for r in v]
        if len(set(out)) != len(out):
            raise ValueError(f"space.rates has duplicates: {v}")
        return out

    @field_validator("choices")
    @classmethod
    def _choices(cls, v: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for key, values in v.items():
            if not _DECISION_KEY.match(key):
                raise ValueError(f"space.choices key {key!r} is not a decision name or '*/suffix'")
            if not values:
                raise ValueError(f"space.choices[{key!r}] must not be an empty list")
        return v


class ControllerSpec(BaseModel):
    """The search algorithm and its settings."""

    model_config = _STRICT
    name: Literal["reinforce", "random", "tpe"] = Field(
        "reinforce",
        description="reinforce: the AutoDropout policy-gradient controller; random: uniform sampling; "
        "tpe: Optuna's Tree-structured Parzen Estimator over the same decisions (through Ray Tune's OptunaSearch)",
    )
    batch_size: int = Field(8, ge=1, description="proposals per policy update (reinforce, random)")
    lr: float = Field(0.0035, gt=0, description="Adam learning rate of the policy")
    entropy_weight: float = Field(0.0001, ge=0, description="weight of the entropy bonus")
    baseline_decay: float = Field(0.95, ge=0, lt=1, description="decay of the moving-average reward baseline")
    warm_start_from: str | None = Field(
        None,
        pattern=r"^[0-9a-f]{32}$",
        description="id of an earlier search of yours with the same model, space and controller: this search's "
        "controller starts from that search's latest stored controller state instead of from scratch",
    )


class BudgetSpec(BaseModel):
    """How much to spend."""

    model_config = _STRICT
    trials: int = Field(64, ge=1, description="child trainings in total")
    epochs_per_trial: int = Field(5, ge=1)
    max_concurrent: int = Field(2, ge=1, description="trials running at once; at most `trials`")
    early_stopping: Literal["none", "asha", "hyperband", "median"] = Field(
        "asha",
        description="Ray Tune scheduler that stops weak trials early: asha (successive halving, rungs at epochs "
        "1, 2, 4, ...), hyperband (asynchronous HyperBand: ASHA over 3 brackets), median (median stopping rule "
        "after 2 epochs), or none",
    )
    grace_epochs: int | None = Field(
        None,
        ge=1,
        description="epochs every trial trains before early stopping may stop it: ASHA's first rung (later rungs "
        "at grace x 2^k) or the median rule's grace period. Default: 1 for asha and hyperband, 2 for median. "
        "Raise it when regularization pays off only late in training (a regularized child often trails an "
        "unregularized one for its first epochs)",
    )
    time_limit_s: float | None = Field(None, gt=0, description="wall-clock limit of the whole search")
    seeds_per_trial: int = Field(
        1,
        ge=1,
        le=16,
        description="children trained per trial, same pattern, different seeds; the trial's reward is their mean "
        "(variance / n for n times the cost)",
    )
    max_failures: int = Field(2, ge=0, le=10, description="retries of a trial that raised before it counts as failed")
    trial_timeout_s: float | None = Field(
        None, gt=0, description="wall-clock limit of one trial attempt; past it the trial is ended and retried"
    )

    @model_validator(mode="after")
    def _concurrency(self) -> BudgetSpec:
        if self.max_concurrent > self.trials:
            raise ValueError(
                f"budget.max_concurrent ({self.max_concurrent}) must not exceed budget.trials ({self.trials})"
            )
        if self.grace_epochs is not None and self.grace_epochs > self.epochs_per_trial:
            raise ValueError(
                f"budget.grace_epochs ({self.grace_epochs}) must not exceed budget.epochs_per_trial "
                f"({self.epochs_per_trial})"
            )
        return self


class ResourcesSpec(BaseModel):
    """Resources of one trial."""

    model_config = _STRICT
    cpus_per_trial: float = Field(1, gt=0)
    gpus_per_trial: float = Field(0, ge=0)
    workers_per_trial: int = Field(1, ge=1, description="> 1 trains the child with DDP")


class TrainingSpec(BaseModel):
    """How each child is trained (the same for every trial of a search, so rewards are comparable)."""

    model_config = _STRICT
    batch_size: int = Field(64, ge=2, le=65536, description="examples per step")
    lr: float = Field(1e-3, gt=0, le=10, description="learning rate of the child")
    optimizer: Literal["adam", "sgd"] = "adam"
    weight_decay: float = Field(0.0, ge=0, le=1)
    pretrain_epochs: int = Field(
        0,
        ge=0,
        le=1000,
        description="the first epochs of each trial train without the pattern (very-large-dropout fine-tuning); "
        "they count inside budget.epochs_per_trial, at least one epoch of which trains under the pattern",
    )
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto = the GPU Ray allocated, if any")
    bf16: bool = Field(True, description="bfloat16 autocast on GPU")
    channels_last: bool = Field(True, description="channels-last memory format for convnets on GPU")
    compile: bool = Field(False, description="torch.compile the child")


class ObjectiveSpec(BaseModel):
    """The reported metric the controller optimizes."""

    model_config = _STRICT
    metric: str = Field("val_accuracy", min_length=1, max_length=100)
    mode: Literal["max", "min"] = "max"
    last_k: int = Field(
        1, ge=1, le=1000, description="reward = mean of the metric over the trial's last k reported epochs (1 = last)"
    )


#: Validation runs train with seeds ``spec.seed + VALIDATION_SEED_OFFSET + i``: fresh, never a search child's seed.
VALIDATION_SEED_OFFSET = 10_000


class BaselineSpec(BaseModel):
    """A reference pattern of the validation stage, written against any model: one variant, one rate everywhere.

    Expanded to a full pattern against the model's sites (every site the variant regularizes gets ``rate`` and
    ``shape``) by :func:`dropsearch.search.validation.baseline_pattern`. Examples: ``{"variant": "none"}`` (no
    dropout), ``{"variant": "bernoulli", "rate": 0.3}`` (plain dropout 0.3 at every site),
    ``{"variant": "dropblock", "rate": 0.1, "shape": {"block_size": 3}}``,
    ``{"variant": "gsnr", "params": {"p": 0.1}}``.
    """

    model_config = _STRICT
    variant: str = Field(description=f"one of {VARIANTS}")
    rate: float = Field(0.0, description="drop rate at every site of the variant, in [0, 1) (0 for 'none')")
    params: dict[str, Any] = Field(default_factory=dict, description="the variant's own settings")
    shape: dict[str, Any] = Field(default_factory=dict, description="per-site shape tokens, e.g. block_size")
    name: str | None = Field(
        None, min_length=1, max_length=100, description="label in the report; default e.g. 'none', 'bernoulli-0.3'"
    )

    @field_validator("variant")
    @classmethod
    def _variant(cls, v: str) -> str:
        if v not in VARIANTS:
            raise ValueError(f"validation.baselines: unknown variant {v!r}; expected one of {', '.join(VARIANTS)}")
        return v

    @model_validator(mode="after")
    def _rate(self) -> BaselineSpec:
        check_rate(self.rate, name="validation.baselines rate")
        if self.variant == "none" and (self.rate or self.params or self.shape):
            raise ValueError("validation.baselines: variant 'none' takes no rate, params or shape")
        if self.name is None:
            self.name = self.variant if self.variant == "none" or not self.rate else f"{self.variant}-{self.rate:g}"
        return self


class ValidationSpec(BaseModel):
    """Re-train the best search patterns and the baselines with fresh paired seeds, after the search.

    A search ranks patterns by one child each, so its top reward is partly the luckiest seed; this stage trains the
    ``top_k`` patterns and every baseline with the same ``seeds`` fresh seeds and reports paired gaps with 95%
    intervals. It costs at most :func:`validation_trials` extra trials, counted in the server's trial cap.
    """

    model_config = _STRICT
    enabled: bool = Field(True, description="run the validation stage after the search")
    top_k: int = Field(3, ge=1, le=20, description="distinct patterns with the best search reward to re-train")
    baselines: list[BaselineSpec] = Field(
        default_factory=lambda: [BaselineSpec(variant="none")],
        max_length=10,
        description="reference patterns trained with the same seeds (default: no dropout)",
    )
    seeds: int = Field(3, ge=2, le=20, description="fresh training seeds, the same for every arm (paired)")
    racing: bool = Field(
        True, description="after 2 seeds, stop arms worse than the leader beyond noise (never a baseline)"
    )

    @field_validator("baselines")
    @classmethod
    def _unique_names(cls, v: list[BaselineSpec]) -> list[BaselineSpec]:
        names = [b.name for b in v]
        duplicated = sorted({n for n in names if names.count(n) > 1 and n is not None})
        if duplicated:
            raise ValueError(f"validation.baselines: duplicate name(s) {duplicated}; give each a distinct 'name'")
        return v


class SearchSpec(BaseModel):
    """A whole search job (docs/SEARCH.md, "The job spec"); ``name`` defaults to ``"<dataset>-<model>"``."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [SEARCH_SPEC_EXAMPLE]})
    name: str | None = Field(None, min_length=1, max_length=200)
    model: ModelRef
    dataset: DatasetRef
    space: SpaceSpec = Field(default_factory=SpaceSpec)
    controller: ControllerSpec = Field(default_factory=ControllerSpec)
    budget: BudgetSpec = Field(default_factory=BudgetSpec)
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)
    objective: ObjectiveSpec = Field(default_factory=ObjectiveSpec)
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    validation: ValidationSpec = Field(default_factory=ValidationSpec)
    seed: int = Field(0, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _printable_text(cls, data: Any) -> Any:
        from dropsearch.search.text import refuse_control_characters

        refuse_control_characters(data)  # names, params, metrics...: no newlines, NUL or escape sequences
        return data

    @model_validator(mode="after")
    def _default_name(self) -> SearchSpec:
        if self.name is None:
            self.name = f"{self.dataset.name}-{self.model.name}"
        return self


def validation_trials(spec: SearchSpec) -> int:
    """The most trials the validation stage of ``spec`` runs: ``(top_k + len(baselines)) * seeds`` (0 if disabled).

    Racing and a search that found fewer than ``top_k`` distinct patterns only make it fewer.
    """
    v = spec.validation
    return (v.top_k + len(v.baselines)) * v.seeds if v.enabled else 0
