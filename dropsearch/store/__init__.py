"""dropsearch.store: persistence of searches, trials, controller states, events and API keys (SQLAlchemy 2).

Engines and sessions come from :mod:`dropsearch.store.db`; repository functions take ``*, session`` and return
frozen records (:mod:`dropsearch.store.records`), so no other package needs SQLAlchemy. The schema is migrated with
:func:`dropsearch.store.migrate.upgrade`.
"""

from dropsearch.store.api_keys import authenticate, create_api_key, list_api_keys, revoke_api_key
from dropsearch.store.controller_states import latest_controller_state, save_controller_state
from dropsearch.store.db import Engine, Session, dispose_engines, get_engine, make_engine, session_scope
from dropsearch.store.errors import LeaseLostError, NotFoundError, StoreError, TrialCompletedError
from dropsearch.store.events import append_event, events_after
from dropsearch.store.fencing import Lease, check_lease
from dropsearch.store.leases import (
    acquire_lease,
    claim_next_queued_search,
    find_resumable,
    release_lease,
    renew_lease,
)
from dropsearch.store.migrate import upgrade
from dropsearch.store.models import (
    COMPLETED_TRIAL_STATUSES,
    SEARCH_STATUSES,
    TERMINAL_SEARCH_STATUSES,
    TRIAL_STATUSES,
)
from dropsearch.store.records import (
    ApiKeyRecord,
    ControllerStateRecord,
    EventRecord,
    SearchPage,
    SearchRecord,
    TrialPage,
    TrialRecord,
)
from dropsearch.store.searches import (
    count_searches_by_status,
    create_search,
    get_search,
    list_searches,
    load_search,
    mark_search_finished,
    request_cancel,
    resume_search,
)
from dropsearch.store.trials import (
    VALIDATION_INDEX_BASE,
    best_trial,
    completed_trials,
    get_trial,
    list_trials,
    requeue_stale_trials,
    set_validation_report,
    trial_finished,
    trial_reported,
    trial_started,
)

__all__ = [
    "COMPLETED_TRIAL_STATUSES",
    "SEARCH_STATUSES",
    "TERMINAL_SEARCH_STATUSES",
    "TRIAL_STATUSES",
    "ApiKeyRecord",
    "ControllerStateRecord",
    "Engine",
    "EventRecord",
    "Lease",
    "LeaseLostError",
    "NotFoundError",
    "SearchPage",
    "SearchRecord",
    "Session",
    "StoreError",
    "TrialCompletedError",
    "TrialPage",
    "TrialRecord",
    "acquire_lease",
    "append_event",
    "authenticate",
    "best_trial",
    "check_lease",
    "claim_next_queued_search",
    "completed_trials",
    "create_api_key",
    "count_searches_by_status",
    "create_search",
    "dispose_engines",
    "events_after",
    "find_resumable",
    "get_engine",
    "get_search",
    "get_trial",
    "latest_controller_state",
    "list_api_keys",
    "list_searches",
    "list_trials",
    "load_search",
    "make_engine",
    "mark_search_finished",
    "release_lease",
    "renew_lease",
    "request_cancel",
    "requeue_stale_trials",
    "set_validation_report",
    "VALIDATION_INDEX_BASE",
    "resume_search",
    "revoke_api_key",
    "save_controller_state",
    "session_scope",
    "trial_finished",
    "trial_reported",
    "trial_started",
    "upgrade",
]
