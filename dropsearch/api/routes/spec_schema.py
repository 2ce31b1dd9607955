"""``/v1/spec-schema``: the JSON schema of a job spec (the body of ``POST /v1/searches``), for editors and forms."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from fastapi import APIRouter

from dropsearch.api.deps import CurrentKey
from dropsearch.api.schemas import ErrorPublic
from dropsearch.search.spec import SearchSpec

__all__ = ["router", "spec_schema"]

router = APIRouter(tags=["catalog"])


@lru_cache(maxsize=1)
def spec_schema() -> dict[str, Any]:
    """The JSON schema (draft 2020-12, pydantic's validation mode) of :class:`~dropsearch.search.spec.SearchSpec`."""
    return SearchSpec.model_json_schema(mode="validation")


@router.get(
    "/v1/spec-schema",
    responses={
        200: {"content": {"application/json": {"schema": {"type": "object"}}}, "description": "a JSON schema"},
        401: {"model": ErrorPublic, "description": "missing, malformed or invalid API key"},
    },
    summary="Job spec schema",
)
def read_spec_schema(key: CurrentKey) -> dict[str, Any]:
    """The JSON schema of a job spec: its fields, types, limits, defaults and descriptions.

    Names of models, datasets and variants are checked against the registries (``GET /v1/catalog``), and the
    server's caps (``max_trials``, ``max_epochs_per_trial``) at submit; the schema does not list them.
    """
    return spec_schema()
