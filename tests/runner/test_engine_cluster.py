"""Trials spread over a 2-node Ray cluster (``ray.cluster_utils.Cluster``, both nodes on this machine)."""

from __future__ import annotations

import pytest

from dropsearch.runner.engine import run_search
from dropsearch.runner.events import SearchCallbacks
from dropsearch.search.spec import SearchSpec

pytestmark = pytest.mark.slow


@pytest.fixture
def two_node_cluster():
    import ray
    from ray.cluster_utils import Cluster

    ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    yield cluster
    ray.shutdown()
    cluster.shutdown()


def test_trials_run_on_both_nodes(two_node_cluster):
    import ray

    assert len([n for n in ray.nodes() if n["Alive"]]) == 2
    started = []
    spec = SearchSpec.model_validate(
        {
            "model": {"name": "mlp", "params": {"hidden": [16]}},
            "dataset": {"name": "synthetic"},
            "space": {"variants": ["bernoulli"], "rates": [0.1, 0.3]},
            "controller": {"batch_size": 2},
            "budget": {"trials": 4, "epochs_per_trial": 1, "max_concurrent": 2, "early_stopping": "none"},
            "validation": {"enabled": False},  # this test counts the search trials only
            "resources": {"cpus_per_trial": 1},
        }
    )
    result = run_search(spec, callbacks=SearchCallbacks(on_trial_started=started.append))
    assert all(t.status == "succeeded" for t in result.trials) and len(result.trials) == 4
    node_ids = {s.node.rsplit(":", 1)[1] for s in started}
    assert len(node_ids) == 2, [s.node for s in started]
