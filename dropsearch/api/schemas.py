"""Response models of the HTTP API: what clients see (store records are never returned directly)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from dropsearch.store.records import SearchRecord, TrialRecord

__all__ = [
    "CatalogEntry",
    "CatalogPublic",
    "CatalogVariant",
    "ErrorPublic",
    "HealthPublic",
    "Links",
    "Progress",
    "SearchPublic",
    "SearchesPublic",
    "TrialPublic",
    "TrialsPublic",
    "search_links",
    "search_public",
    "trial_public",
    "validation_table",
]


class ErrorPublic(BaseModel):
    """An error: ``detail`` names the problem (422 bodies also list ``errors`` with each field path)."""

    detail: str
    errors: list[dict[str, Any]] | None = None


class Progress(BaseModel):
    """How far a search is: completed trials of the budget."""

    trials_done: int
    trials_total: int


class Links(BaseModel):
    """Paths of a search's sub-resources (relative to the API's base URL)."""

    self: str
    trials: str
    events: str
    best: str
    plot: str
    cancel: str


class SearchPublic(BaseModel):
    """A search as the API shows it."""

    id: str
    name: str | None
    status: str = Field(description="queued, running, succeeded, failed or cancelled")
    spec: dict[str, Any]
    progress: Progress
    best_reward: float | None
    best_trial_id: str | None
    cancel_requested: bool
    error: str | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    links: Links
    ray_dashboard_url: str
    validation: dict[str, Any] | None = Field(
        None,
        description="the validation stage's report once it has one (per arm: mean, sd, n, results per seed and the "
        "paired gap to each baseline with its 95% interval; the chosen arm and a conclusion sentence), else null",
    )


class SearchesPublic(BaseModel):
    """One page of searches (newest first) and how many there are in all."""

    data: list[SearchPublic]
    count: int


class TrialPublic(BaseModel):
    """A trial: its pattern, status, per-epoch metrics, reward and timings."""

    id: str
    search_id: str
    index: int
    kind: str = Field("search", description="'search' (proposed by the controller) or 'validation' (a re-training)")
    arm: str | None = Field(None, description="validation runs: the arm re-trained (e.g. 'search-1', 'none')")
    seed: int | None = Field(None, description="validation runs: the training seed (the same for every arm)")
    status: str
    attempt: int
    tokens: list[Any]
    pattern: dict[str, Any] | None
    metrics: list[dict[str, Any]] = Field(description="one entry per reported epoch, with its 'epoch' key")
    reward: float | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    wall_s: float | None
    node: str | None
    error: str | None
    mask_url: str


class TrialsPublic(BaseModel):
    """One page of trials (by index) and how many there are in all."""

    data: list[TrialPublic]
    count: int


class CatalogEntry(BaseModel):
    """A model or dataset name a job spec may use."""

    name: str
    description: str
    builtin: bool
    variants: list[str] | None = Field(
        None,
        description="models: the variants a search of this model can be offered (null when only known once the "
        "model is built, e.g. a plugin model); datasets: null",
    )


class CatalogVariant(BaseModel):
    """A regularizer variant and the decisions it adds to a search space."""

    name: str
    description: str
    site_kinds: list[str] = Field(description="kinds of dropout site the variant regularizes")
    excluded_site_kinds: list[str] = Field(
        default_factory=list, description="the variant is not offered to a model with a site of one of these kinds"
    )
    decisions: dict[str, list[Any]] = Field(description="global decisions '<variant>/<param>' and their choices")
    site_decisions: dict[str, dict[str, list[Any]]] = Field(
        description="per-site decisions by site kind ('<site>/<token>' and their choices)"
    )
    constants: dict[str, Any]


class CatalogPublic(BaseModel):
    """What a job spec may name."""

    models: list[CatalogEntry]
    datasets: list[CatalogEntry]
    variants: list[CatalogVariant]
    default_variants: list[str]
    default_rates: list[float]


class HealthPublic(BaseModel):
    """Liveness: the service and its database."""

    status: str
    database: str


def search_links(search_id: str) -> Links:
    """The sub-resource paths of a search."""
    base = f"/v1/searches/{search_id}"
    return Links(
        self=base,
        trials=f"{base}/trials",
        events=f"{base}/events",
        best=f"{base}/best",
        plot=f"{base}/plot.png",
        cancel=f"{base}/cancel",
    )


def validation_table(report: dict[str, Any] | None) -> dict[str, Any] | None:
    """The stored validation report without the chosen arm's ``pattern`` (``/best`` serves that), or ``None``."""
    return None if report is None else {k: v for k, v in report.items() if k != "pattern"}


def search_public(record: SearchRecord, *, ray_dashboard_url: str) -> SearchPublic:
    """The public view of a stored search."""
    return SearchPublic(
        id=record.id,
        name=record.name,
        status=record.status,
        spec=record.spec,
        progress=Progress(trials_done=record.trials_done, trials_total=record.trials_total),
        best_reward=record.best_reward,
        best_trial_id=record.best_trial_id,
        cancel_requested=record.cancel_requested,
        error=record.error,
        created_at=record.created_at,
        updated_at=record.updated_at,
        started_at=record.started_at,
        finished_at=record.finished_at,
        links=search_links(record.id),
        ray_dashboard_url=ray_dashboard_url,
        validation=validation_table(record.validation),
    )


def trial_public(record: TrialRecord) -> TrialPublic:
    """The public view of a stored trial."""
    return TrialPublic(
        id=record.id,
        search_id=record.search_id,
        index=record.index,
        kind=record.kind,
        arm=record.arm,
        seed=record.seed,
        status=record.status,
        attempt=record.attempt,
        tokens=record.tokens,
        pattern=record.pattern,
        metrics=record.metrics,
        reward=record.reward,
        created_at=record.created_at,
        started_at=record.started_at,
        finished_at=record.finished_at,
        wall_s=record.wall_s,
        node=record.node,
        error=record.error,
        mask_url=f"/v1/trials/{record.id}/mask.png",
    )
