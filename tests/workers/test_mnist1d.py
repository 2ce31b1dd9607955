"""MNIST-1D: generated offline by the mnist1d package, split 3200 / 800 / 1000, global random state untouched."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest
import torch

from dropsearch.search.catalog import DATASETS
from dropsearch.workers.datasets import dataset_info, dataset_names, load_dataset
from dropsearch.workers.datasets.mnist1d import mnist1d_arrays
from tests.workers._helpers import no_network, rows  # noqa: F401  (no_network: an autouse fixture)


@pytest.fixture(scope="module")
def reference():
    """The package's own generation with its default arguments (the independent reference)."""
    from mnist1d.data import get_dataset_args, make_dataset

    state = random.getstate(), np.random.get_state()
    try:
        return make_dataset(get_dataset_args())
    finally:
        random.setstate(state[0])
        np.random.set_state(state[1])


def test_registered_with_its_facts():
    assert "mnist1d" in dataset_names() and "mnist1d" in DATASETS
    info = dataset_info("mnist1d")
    assert info.input_kind == "signal" and info.task == "classification" and not info.uses_path
    assert info.params["val_fraction"] == 0.2 and info.params["label_noise"] == 0.0


def test_matches_the_package_generation_and_splits_3200_800_1000(reference):
    b = load_dataset("mnist1d", seed=0)
    assert b.in_shape == (1, 40) and b.num_classes == 10 and b.input_kind == "signal"
    assert (len(b.y_train), len(b.y_val), len(b.y_test)) == (3200, 800, 1000)
    assert b.x_train.dtype == torch.float32 and b.y_train.dtype == torch.int64
    x_ref = torch.tensor(reference["x"], dtype=torch.float32).view(-1, 1, 40)
    y_ref = torch.tensor(reference["y"])
    # train + val are exactly the 4000 training examples with their labels; test is the 1000 test examples
    assert rows(torch.cat([b.x_train, b.x_val])) == rows(x_ref)
    pairs = Counter(
        zip(rows_list(torch.cat([b.x_train, b.x_val])), torch.cat([b.y_train, b.y_val]).tolist(), strict=True)
    )
    assert pairs == Counter(zip(rows_list(x_ref), y_ref.tolist(), strict=True))
    torch.testing.assert_close(b.x_test, torch.tensor(reference["x_test"], dtype=torch.float32).view(-1, 1, 40))
    assert torch.equal(b.y_test, torch.tensor(reference["y_test"]))
    # stratified validation: 20 % of each class (+-1 for rounding)
    per_class = torch.bincount(y_ref, minlength=10).double()
    assert (torch.bincount(b.y_val, minlength=10).double() - 0.2 * per_class).abs().max() <= 1


def rows_list(x: torch.Tensor) -> list[bytes]:
    return [r.tobytes() for r in x.reshape(len(x), -1).contiguous().numpy()]


def test_split_follows_the_seed_and_the_signals_do_not():
    a, b, c = (load_dataset("mnist1d", seed=s) for s in (0, 0, 1))
    assert torch.equal(a.x_val, b.x_val) and torch.equal(a.y_train, b.y_train)
    assert not torch.equal(a.x_val, c.x_val)
    assert torch.equal(a.x_test, c.x_test)  # the test examples never move


def test_generation_leaves_the_global_random_state_alone():
    random.seed(123)
    np.random.seed(123)
    from dropsearch.workers.datasets import mnist1d as module

    module._generated.cache_clear()  # generate again, now
    x, _, _, _ = mnist1d_arrays()
    assert x.shape == (4000, 1, 40)
    assert random.random() == random.Random(123).random()
    assert np.random.rand() == np.random.RandomState(123).rand()


def test_subsets_and_no_test():
    b = load_dataset("mnist1d", params={"n_train": 500, "include_test": False}, seed=0)
    assert len(b.y_train) == 500 and b.x_test is None and b.y_test is None
    with pytest.raises(ValueError, match="mnist1d param val_fraction"):
        load_dataset("mnist1d", params={"val_fraction": 0}, seed=0)
    with pytest.raises(ValueError, match="mnist1d param n_train"):
        load_dataset("mnist1d", params={"n_train": 5000}, seed=0)


def test_a_missing_package_is_named(monkeypatch):
    import sys

    from dropsearch.workers.datasets import mnist1d as module

    module._generated.cache_clear()
    monkeypatch.setitem(sys.modules, "mnist1d.data", None)  # as if the package were not installed
    try:
        with pytest.raises(ImportError, match=r"pip install 'dropsearch\[service\]'"):
            load_dataset("mnist1d", seed=0)
    finally:
        module._generated.cache_clear()
