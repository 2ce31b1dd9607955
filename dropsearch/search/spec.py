"""The job spec: the body of ``POST /v1/searches`` (DESIGN.md section 4b), as pydantic v2 models.

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

from dropsearch.regularizers.pattern import VARIANTS, check_rate
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
        "time_limit_s": None,
    },
    "resources": {"cpus_per_trial": 1, "gpus_per_trial": 0, "workers_per_trial": 1},
    "objective": {"metric": "val_accuracy", "mode": "max"},
    "training": {"batch_size": 64, "lr": 0.001, "optimizer": "adam", "weight_decay": 0.0, "device": "auto"},
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
    variants: list[str] = Field(default_factory=lambda: list(DEFAULT_VARIANTS), description=f"subset of {VARIANTS}")
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
            if name not in VARIANTS:
                raise ValueError(f"space.variants: unknown variant {name!r}; expected one of {', '.join(VARIANTS)}")
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
    name: Literal["reinforce", "random"] = "reinforce"
    batch_size: int = Field(8, ge=1, description="proposals per policy update")
    lr: float = Field(0.0035, gt=0, description="Adam learning rate of the policy")
    entropy_weight: float = Field(0.0001, ge=0, description="weight of the entropy bonus")
    baseline_decay: float = Field(0.95, ge=0, lt=1, description="decay of the moving-average reward baseline")


class BudgetSpec(BaseModel):
    """How much to spend."""

    model_config = _STRICT
    trials: int = Field(64, ge=1, description="child trainings in total")
    epochs_per_trial: int = Field(5, ge=1)
    max_concurrent: int = Field(2, ge=1, description="trials running at once; at most `trials`")
    early_stopping: Literal["none", "asha"] = "asha"
    time_limit_s: float | None = Field(None, gt=0, description="wall-clock limit of the whole search")
    max_failures: int = Field(2, ge=0, le=10, description="retries of a trial that raised before it counts as failed")

    @model_validator(mode="after")
    def _concurrency(self) -> BudgetSpec:
        if self.max_concurrent > self.trials:
            raise ValueError(
                f"budget.max_concurrent ({self.max_concurrent}) must not exceed budget.trials ({self.trials})"
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
        0, ge=0, le=1000, description="epochs trained without the pattern first (very-large-dropout fine-tuning)"
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


class SearchSpec(BaseModel):
    """A whole search job (DESIGN.md section 4b); ``name`` defaults to ``"<dataset>-<model>"``."""

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
    seed: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _default_name(self) -> SearchSpec:
        if self.name is None:
            self.name = f"{self.dataset.name}-{self.model.name}"
        return self
