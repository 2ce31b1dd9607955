"""API fuzzing: schemathesis generates requests (valid and invalid) from the OpenAPI document and sends them,
authenticated, to a live uvicorn; every response must be non-5xx and conform to the documented schema (status
code, content type, headers, body).

Each operation is fuzzed in schemathesis' positive and negative modes with up to ``MAX_EXAMPLES`` cases each;
the last test checks that at least 1000 requests were sent in all and none was answered 5xx. (Hypothesis drives
the generation directly: schemathesis' own pytest plugin does not run under pytest 9.)
"""

from __future__ import annotations

import os
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import positive_data_acceptance

from dropsearch.api.app import create_app
from dropsearch.config import Settings
from dropsearch.store.db import make_engine
from tests.api import runner_sim
from tests.api.conftest import make_key, make_settings
from tests.api.server import serve

pytestmark = pytest.mark.slow

MAX_EXAMPLES = 100
#: CI replays the same cases every run (a red run is reproducible); DROPSEARCH_FUZZ_RANDOM=1 explores new ones.
RANDOM = os.environ.get("DROPSEARCH_FUZZ_RANDOM") == "1"
#: A job spec is only accepted when its names are in the registries and it meets cross-field rules and the
#: server's caps, which JSON Schema cannot express: schema-valid random specs are rightly refused with 422.
#: Every other check (no 5xx, status codes, content types, headers, response bodies) stays on.
EXCLUDED = {"POST /v1/searches": [positive_data_acceptance]}
SENT: Counter[str] = Counter()
STATUSES: Counter[int] = Counter()


def _operations() -> list[tuple[str, bool]]:
    document = create_app(Settings(database_url="sqlite://"), migrate=False).openapi()
    schema = schemathesis.openapi.from_dict(document)
    return [
        (op.ok().label, bool(op.ok().path_parameters or op.ok().query or op.ok().body))
        for op in schema.get_all_operations()
    ]


OPERATIONS = _operations()
OWNED = "owned"  # positive mode with the path ids fixed to a finished search (and trial) of the caller
CASES = [
    (label, mode)
    for label, has_input in OPERATIONS
    for mode in ("positive", "negative", OWNED)
    if mode == "positive" or (has_input and (mode == "negative" or "_id}" in label))
]


_SPEC = {
    "name": "fuzz",
    "model": {"name": "convnet"},
    "dataset": {"name": "digits"},
    "budget": {"trials": 2},
    "validation": {"enabled": False},
}


def _finished_search(engine) -> dict[str, str]:
    from dropsearch.store.db import session_scope
    from dropsearch.store.searches import create_search

    with session_scope(engine) as session:
        search = create_search(session=session, owner="alice", name="fuzz", spec=_SPEC, trials_total=2)
    runner_sim.claim(engine, search.id)
    trial_id = runner_sim.run_trial(engine, search.id, 0, 0.7)
    runner_sim.run_trial(engine, search.id, 1, 0.6, variant="dropblock")
    runner_sim.finish(engine, search.id)
    return {"search_id": search.id, "trial_id": trial_id}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[tuple[object, str, str]]:
    tmp = tmp_path_factory.mktemp("fuzz")
    shutil.copyfile(sqlite_template, tmp / "store.db")
    url = f"sqlite:///{tmp / 'store.db'}"
    engine = make_engine(url)
    key = make_key(engine, "alice")
    app = create_app(make_settings(url, tmp), migrate=False, sse_poll_s=0.02, sse_keepalive_s=0.1)
    sid = _finished_search(engine)
    with serve(app) as base:
        yield schemathesis.openapi.from_url(f"{base}/openapi.json"), base, key, sid
    engine.dispose()


@pytest.mark.parametrize(("label", "mode"), CASES)
def test_api_never_answers_5xx_and_always_matches_its_schema(live, label: str, mode: str) -> None:
    schema, base, key, owned = live
    operation = next(op.ok() for op in schema.get_all_operations() if op.ok().label == label)
    fixed = {name: owned[name] for name in owned if "{" + name + "}" in label} if mode == OWNED else None
    session = requests.Session()
    headers = {"Authorization": f"Bearer {key}"}

    @given(
        case=operation.as_strategy(
            generation_mode=GenerationMode.POSITIVE if mode == OWNED else GenerationMode(mode), path_parameters=fixed
        )
    )
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=not RANDOM,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def fuzz(case: schemathesis.Case) -> None:
        # A negative case whose headers are the broken part (no Authorization) is sent as generated: adding the
        # key would repair it, and the check would then expect a refusal of a valid request.
        unauthenticated = (
            mode == "negative" and case.meta is not None and case.meta.is_negative_at(ParameterLocation.HEADER)
        )
        sent = {} if unauthenticated else headers
        response = case.call(base_url=base, headers=sent, session=session, timeout=10)
        SENT[label] += 1
        STATUSES[response.status_code] += 1
        assert response.status_code < 500, (case.method, case.formatted_path, response.status_code, response.text)
        case.validate_response(response, headers=sent, excluded_checks=EXCLUDED.get(label, []))

    try:
        fuzz()
    except Unsatisfiable:  # no input of this operation can break its schema (e.g. a free-form path string)
        assert mode == "negative", label


def test_fuzzing_sent_at_least_1000_requests_and_no_5xx() -> None:
    total = sum(SENT.values())
    print(f"fuzzed requests: {total}; by status: {dict(sorted(STATUSES.items()))}; by operation: {dict(SENT)}")
    assert total >= 1000, dict(SENT)
    assert not [code for code in STATUSES if code >= 500]
