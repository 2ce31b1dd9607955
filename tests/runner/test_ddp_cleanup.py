"""Placement groups left by dead actors (a DDP trial's Ray Train controller) are removed; others are kept."""

from __future__ import annotations

import time

import pytest

from dropsearch.runner.ddp_cleanup import reap_orphans, reap_orphans_soon, release_own

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    import ray

    ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _state(pg) -> str:
    import ray

    return ray.util.placement_group_table(pg)["state"]


def _actors():
    import ray
    from ray.util.placement_group import placement_group

    @ray.remote(num_cpus=0)
    class Maker:
        """Makes a placement group, as Ray Train's controller does for its workers."""

        def make(self, cpus: float):
            self.pg = placement_group([{"CPU": cpus}])
            ray.get(self.pg.ready())
            return self.pg

    @ray.remote(num_cpus=0)
    class Owner:
        """Owns a Maker, as a DDP trial's process owns its Ray Train controller."""

        def start(self, cpus: float):
            self.maker = Maker.remote()
            return ray.get(self.maker.make.remote(cpus))

        def release(self) -> int:
            return release_own()

    return Maker, Owner


def test_the_group_of_a_dead_actor_is_removed_and_its_cpus_come_back_while_live_and_driver_groups_stay():
    import ray
    from ray.util.placement_group import placement_group, remove_placement_group

    maker_cls, _ = _actors()
    driver_pg = placement_group([{"CPU": 0.25}])  # like Tune's trial groups: made by the driver
    ray.get(driver_pg.ready())
    dead, live = maker_cls.remote(), maker_cls.remote()
    dead_pg, live_pg = ray.get(dead.make.remote(1.0)), ray.get(live.make.remote(0.25))
    assert ray.available_resources()["CPU"] == pytest.approx(0.5)
    assert reap_orphans() == 0  # every maker lives
    ray.kill(dead)
    deadline = time.monotonic() + 30
    while reap_orphans() == 0:
        assert time.monotonic() < deadline, "the dead actor's placement group was never reaped"
        time.sleep(0.2)
    assert _state(dead_pg) == "REMOVED"
    assert _state(live_pg) == "CREATED" and _state(driver_pg) == "CREATED"
    deadline = time.monotonic() + 30  # the resource view catches up within a heartbeat or two
    while ray.available_resources().get("CPU") != pytest.approx(1.5):
        assert time.monotonic() < deadline, ray.available_resources()
        time.sleep(0.2)
    assert reap_orphans() == 0
    ray.kill(live)
    reap_orphans_soon((1.0, 3.0)).join(10)
    assert _state(live_pg) == "REMOVED" and _state(driver_pg) == "CREATED"
    remove_placement_group(driver_pg)


def test_a_process_releases_the_groups_of_the_actors_it_owns_and_no_others():
    import ray

    maker_cls, owner_cls = _actors()
    owner = owner_cls.remote()
    owned_pg = ray.get(owner.start.remote(0.5))
    other = maker_cls.remote()  # owned by the driver, not by `owner`
    other_pg = ray.get(other.make.remote(0.5))
    assert ray.get(owner.release.remote()) == 1
    assert _state(owned_pg) == "REMOVED" and _state(other_pg) == "CREATED"
    assert ray.get(owner.release.remote()) == 0
    ray.kill(other)
    ray.kill(owner)
