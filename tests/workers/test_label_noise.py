"""label_noise on the classification datasets: exact fraction of training labels flipped, nothing else changed."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from dropsearch.workers.datasets import load_dataset
from dropsearch.workers.datasets.label_noise import check_label_noise, flip_labels


def expected_flips(n: int, fraction: float) -> int:
    return math.floor(fraction * n + 0.5)


def assert_noisy_twin(clean, noisy, fraction: float) -> torch.Tensor:
    """Everything equal but the training labels; exactly the expected number of them changed."""
    assert torch.equal(clean.x_train, noisy.x_train)
    assert torch.equal(clean.x_val, noisy.x_val) and torch.equal(clean.y_val, noisy.y_val)
    for name in ("d_train", "d_val", "x_test", "y_test"):
        a, b = getattr(clean, name), getattr(noisy, name)
        assert (a is None and b is None) or torch.equal(a, b), name
    assert clean.test_domains.keys() == noisy.test_domains.keys()
    for k, (x, y) in clean.test_domains.items():
        assert torch.equal(x, noisy.test_domains[k][0]) and torch.equal(y, noisy.test_domains[k][1])
    changed = clean.y_train != noisy.y_train
    n = len(clean.y_train)
    assert int(changed.sum()) == expected_flips(n, fraction) == noisy.info["flipped"]
    assert noisy.info["label_noise"] == fraction
    assert int(noisy.y_train.min()) >= 0 and int(noisy.y_train.max()) < clean.num_classes
    return changed


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("digits", {}),
        ("rotated-digits", {}),
        ("synthetic", {"domains": 2, "test_domains": 1}),
        ("mnist1d", {}),
    ],
)
@pytest.mark.parametrize("fraction", [0.1, 0.37])
def test_exact_fraction_of_training_labels_flipped(name, params, fraction):
    clean = load_dataset(name, params=params, seed=3)
    noisy = load_dataset(name, params={**params, "label_noise": fraction}, seed=3)
    changed = assert_noisy_twin(clean, noisy, fraction)
    again = load_dataset(name, params={**params, "label_noise": fraction}, seed=3)
    assert torch.equal(again.y_train, noisy.y_train)  # a fixed seed: the same flips
    other = load_dataset(name, params={**params, "label_noise": fraction}, seed=4)
    assert not torch.equal(other.y_train, noisy.y_train)
    # flipped labels land on every other class, roughly uniformly (K - 1 choices each)
    new = noisy.y_train[changed]
    counts = torch.bincount(new, minlength=clean.num_classes).double()
    assert (counts > 0).sum() >= clean.num_classes - 1


def test_flip_labels_against_a_naive_count():
    y = torch.arange(1000) % 7
    noisy, flipped = flip_labels(y, 0.25, 7, seed=0, name="x param label_noise")
    assert len(flipped) == 250 and torch.equal(flipped, flipped.sort().values)
    naive = [i for i in range(1000) if int(noisy[i]) != int(y[i])]
    assert naive == flipped.tolist()
    # the offset (new - old) mod K is uniform on 1..K-1: 250 draws over 6 values, each well represented
    offsets = ((noisy[flipped] - y[flipped]) % 7).tolist()
    assert set(offsets) == set(range(1, 7)) and min(offsets.count(k) for k in range(1, 7)) > 20
    assert torch.equal(y, torch.arange(1000) % 7)  # the input is not modified
    same, none = flip_labels(y, 0.0, 7, seed=0, name="x")
    assert torch.equal(same, y) and len(none) == 0
    tiny, idx = flip_labels(torch.zeros(3, dtype=torch.int64), 0.5, 2, seed=0, name="x")
    assert len(idx) == 2 and int(tiny.sum()) == 2  # floor(1.5 + 0.5) = 2, both to class 1


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, "lots", None, True, float("nan")])
@pytest.mark.parametrize("name", ["digits", "rotated-digits", "synthetic", "mnist1d"])
def test_bad_label_noise_is_refused_naming_the_param(name, bad):
    with pytest.raises(ValueError, match=f"{name} param label_noise"):
        load_dataset(name, params={"label_noise": bad}, seed=0)


def test_check_label_noise_bounds():
    assert check_label_noise(0, name="p") == 0.0 and check_label_noise(0.999, name="p") == 0.999
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\)"):
        check_label_noise(1, name="p")
    with pytest.raises(ValueError, match="at least 2 classes"):
        flip_labels(torch.zeros(4, dtype=torch.int64), 0.5, 1, seed=0, name="p")


def test_image_folder_label_noise(tmp_path):
    for cls, color in {"red": (255, 0, 0), "blue": (0, 0, 255)}.items():
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for i in range(10):
            Image.new("RGB", (4, 4), color).save(tmp_path / "imgs" / cls / f"{i}.png")
    params = {"path": "imgs", "size": 4}
    clean = load_dataset("image-folder", params=params, seed=0, allowed_roots=[tmp_path])
    noisy = load_dataset("image-folder", params={**params, "label_noise": 0.5}, seed=0, allowed_roots=[tmp_path])
    changed = assert_noisy_twin(clean, noisy, 0.5)
    assert torch.equal(noisy.y_train[changed], 1 - clean.y_train[changed])  # two classes: the other one
    with pytest.raises(ValueError, match="image-folder param label_noise"):
        load_dataset("image-folder", params={**params, "label_noise": 2}, seed=0, allowed_roots=[tmp_path])


def test_cifar10_label_noise(tmp_path):
    rng = np.random.default_rng(0)
    d = tmp_path / "cifar"
    d.mkdir()
    for f in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"labels": [i % 10 for i in range(20)], b"data": rng.integers(0, 256, (20, 3072), dtype=np.uint8)}
        with open(d / f, "wb") as fh:
            pickle.dump(batch, fh, protocol=2)
    clean = load_dataset("cifar10", params={"path": str(d)}, seed=1, allowed_roots=[tmp_path])
    noisy = load_dataset("cifar10", params={"path": str(d), "label_noise": 0.2}, seed=1, allowed_roots=[tmp_path])
    assert_noisy_twin(clean, noisy, 0.2)
    with pytest.raises(ValueError, match="cifar10 param label_noise"):
        load_dataset("cifar10", params={"path": str(d), "label_noise": -1}, seed=1, allowed_roots=[tmp_path])
