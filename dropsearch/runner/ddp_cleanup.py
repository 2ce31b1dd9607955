"""Give back the CPUs/GPUs of Ray Train runs whose DDP trial ended before its trainer did.

A DDP trial (``resources.workers_per_trial > 1``) runs a Ray Train ``TorchTrainer``: a controller actor, owned by
the trial's process, creates a placement group that reserves the workers' CPUs/GPUs. When the trial ends before
the trainer does (ASHA stops it, a cancel, the hang watchdog, a crash), the controller and its workers die with
the trial's process, but their placement group does not: Ray keeps a placement group that an actor made until
that actor AND its job have ended, and the job (the runner) lives on. Ray Train's own cleaner asks the dashboard's
state API, which a Ray without a dashboard (or a machine running several Ray instances) does not answer. The
placement group would then hold the CPUs/GPUs for good, and the next DDP trial would wait for them forever.

- :func:`release_own`: the trial's process, as it exits (the hang watchdog; Python's ``atexit``), removes the
  placement groups of the Ray Train controllers it owns;
- :func:`reap_orphans`: a DDP trial, before and while its trainer starts, removes the placement groups of its job
  whose creating actor is dead (those of trials stopped or killed before their trainer ended);
- :func:`reap_orphans_soon`: the engine, when an experiment with DDP trials ends, does the same a few times in
  the background (the last trials' controllers die a moment after their trials).

DDP trials run their trainer without Ray Train's cleaner (``run_ddp_child(placement_group_cleaner=False)``),
which would otherwise stay behind as one idle detached process per such trial.

Both read Ray's global control store directly (no dashboard needed) and never touch a placement group made by a
driver (Tune's trial placement groups), a detached one, or one of another job.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

log = logging.getLogger(__name__)

__all__ = ["reap_orphans", "reap_orphans_soon", "release_own"]


def _accessor() -> Any:
    from ray._private import state

    return state.state._connect_and_get_accessor()


def _placement_groups() -> list[Any]:
    """Every placement group of the cluster, as ``PlacementGroupTableData`` messages."""
    from ray.core.generated import gcs_pb2

    return [gcs_pb2.PlacementGroupTableData.FromString(raw) for raw in _accessor().get_placement_group_table()]


def _made_by_an_actor_of_this_job(pg: Any) -> bool:
    import ray
    from ray.core.generated import gcs_pb2

    if pg.state == gcs_pb2.PlacementGroupTableData.REMOVED or pg.is_detached or not pg.creator_actor_id:
        return False
    if ray.ActorID(pg.creator_actor_id).is_nil():  # made by a driver (Tune's trial placement groups)
        return False
    return pg.creator_job_id.hex() == ray.get_runtime_context().get_job_id()


def _remove(groups: list[Any], why: str) -> int:
    import ray
    from ray.util.placement_group import PlacementGroup, remove_placement_group

    for pg in groups:
        log.info("removing placement group %s (%s)", pg.placement_group_id.hex(), why)
        try:
            remove_placement_group(PlacementGroup(ray.PlacementGroupID(pg.placement_group_id)))
        except Exception as exc:  # removed meanwhile: nothing left to give back
            log.debug("placement group %s: %s", pg.placement_group_id.hex(), exc)
    return len(groups)


def _actors() -> list[Any]:
    """This job's actors, as ``ActorTableData`` messages."""
    import ray
    from ray.core.generated import gcs_pb2

    job = ray.JobID.from_hex(ray.get_runtime_context().get_job_id())
    return [gcs_pb2.ActorTableData.FromString(raw) for raw in _accessor().get_actor_table(job, None)]


def reap_orphans() -> int:
    """Remove this job's placement groups whose creating actor is dead; returns how many were removed."""
    stale = [pg for pg in _placement_groups() if _made_by_an_actor_of_this_job(pg) and pg.creator_actor_dead]
    return _remove(stale, "its creating actor is dead")


def reap_orphans_soon(delays_s: tuple[float, ...] = (1.0, 3.0, 10.0)) -> threading.Thread:
    """Call :func:`reap_orphans` after each of ``delays_s`` (seconds from now) in a daemon thread; returns it.

    Errors (Ray shut down meanwhile) end the thread quietly.
    """

    def run() -> None:
        waited = 0.0
        for delay in delays_s:
            time.sleep(max(0.0, delay - waited))
            waited = delay
            try:
                reap_orphans()
            except Exception as exc:
                log.debug("reaping placement groups: %s", exc)
                return

    thread = threading.Thread(target=run, name="dropsearch-reap-placement-groups", daemon=True)
    thread.start()
    return thread


def release_own() -> int:
    """Remove the placement groups made by actors this process owns (its Ray Train controllers); returns how many."""
    import ray

    me = ray.get_runtime_context().get_worker_id()
    owned = {actor.actor_id for actor in _actors() if actor.owner_address.worker_id.hex() == me}
    mine = [pg for pg in _placement_groups() if _made_by_an_actor_of_this_job(pg) and pg.creator_actor_id in owned]
    return _remove(mine, "its trial ended")
