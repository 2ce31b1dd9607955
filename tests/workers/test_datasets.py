"""Dataset registry and built-in datasets: shapes, ranges, seeded splits, domains, path confinement, file formats."""

from __future__ import annotations

import os
import pickle
from collections import Counter
from importlib import metadata

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch
from PIL import Image
from sklearn.datasets import load_digits

from dropsearch.workers import _plugins
from dropsearch.workers.datasets import (
    DatasetBundle,
    DatasetNotFoundError,
    dataset_info,
    dataset_names,
    decode,
    load_dataset,
    register_dataset,
    registry,
    rotate_images,
    stratified_split,
)
from dropsearch.workers.datasets.cifar10 import read_batch
from dropsearch.workers.models import build_model
from tests.workers._helpers import no_network, rows  # noqa: F401  (no_network: an autouse fixture)

DEVICE = torch.device(os.environ.get("DROPSEARCH_TEST_DEVICE", "cpu"))


@pytest.fixture(scope="module")
def sk_digits():
    data, target = load_digits(return_X_y=True)
    return torch.tensor(data, dtype=torch.float32).view(-1, 1, 8, 8) / 16.0, torch.tensor(target)


def test_builtin_dataset_names():
    assert {"digits", "rotated-digits", "synthetic", "image-folder", "cifar10", "char-corpus"} <= set(dataset_names())
    assert dataset_info("char-corpus").task == "language_model"
    assert dataset_info("char-corpus").input_kind == "sequence"
    assert dataset_info("cifar10").uses_path and not dataset_info("digits").uses_path
    assert dataset_info("rotated-digits").params["test_domains"] == (60, 75)


# ---- splits --------------------------------------------------------------------------------------------------


def test_stratified_split_counts_disjoint_and_covering():
    y = torch.tensor([0] * 10 + [1] * 7 + [2] * 3)
    g = torch.Generator().manual_seed(0)
    picked, rest = stratified_split(y, fraction=0.3, generator=g)
    assert sorted(torch.cat([picked, rest]).tolist()) == list(range(20))
    assert torch.bincount(y[picked], minlength=3).tolist() == [3, 2, 1]  # round(0.3 * [10, 7, 3])
    picked, _ = stratified_split(y, n=10, generator=g)
    # quotas 5, 3.5, 1.5: floors 5, 3, 1, the one left goes to the first largest remainder
    assert torch.bincount(y[picked], minlength=3).tolist() == [5, 4, 1]


def test_digits_matches_sklearn_and_is_stratified(sk_digits):
    x_ref, y_ref = sk_digits
    b = load_dataset("digits", seed=0)
    assert isinstance(b, DatasetBundle)
    assert b.in_shape == (1, 8, 8) and b.num_classes == 10 and b.task == "classification"
    assert b.x_train.dtype == torch.float32 and b.y_train.dtype == torch.int64
    assert 0.0 <= float(b.x_train.min()) and float(b.x_train.max()) <= 1.0
    assert rows(torch.cat([b.x_train, b.x_val])) == rows(x_ref)  # a partition of the sklearn images
    expected_val = torch.round(torch.bincount(y_ref).double() * 0.2).long()
    assert torch.bincount(b.y_val, minlength=10).tolist() == expected_val.tolist()
    # labels stay attached to their images
    lookup = {r.numpy().tobytes(): int(t) for r, t in zip(x_ref.reshape(len(x_ref), -1), y_ref, strict=True)}
    assert all(
        lookup[r.numpy().tobytes()] == int(t) for r, t in zip(b.x_val.reshape(len(b.x_val), -1), b.y_val, strict=True)
    )


def test_digits_split_is_deterministic_by_seed():
    a, b, c = (load_dataset("digits", seed=s) for s in (3, 3, 4))
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_val, b.y_val)
    assert rows(a.x_val) != rows(c.x_val)


def test_digits_size_and_training_subsets():
    b = load_dataset("digits", params={"size": 16, "n_train": 100}, seed=0)
    assert b.x_train.shape == (100, 1, 16, 16) and b.in_shape == (1, 16, 16)
    assert torch.bincount(b.y_train).tolist() == [10] * 10
    assert 0.0 <= float(b.x_train.min()) and float(b.x_train.max()) <= 1.0
    full = load_dataset("digits", seed=0)
    half = load_dataset("digits", params={"train_fraction": 0.5}, seed=0)
    assert len(half.y_train) == round(0.5 * len(full.y_train))
    assert torch.equal(half.y_val, full.y_val)  # the subsample leaves validation alone
    with pytest.raises(ValueError, match="train_fraction"):
        load_dataset("digits", params={"n_train": 10, "train_fraction": 0.5}, seed=0)
    with pytest.raises(ValueError, match="val_fraction"):
        load_dataset("digits", params={"val_fraction": 1.5}, seed=0)


# ---- rotated digits ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("angle", [15, 30, 45, 60, 75, 90])
def test_rotate_images_matches_scipy(angle):
    x = torch.rand(3, 1, 12, 12, generator=torch.Generator().manual_seed(angle))
    ref = np.stack([ndi.rotate(im[0].numpy(), angle, reshape=False, order=1, mode="grid-constant") for im in x])
    torch.testing.assert_close(rotate_images(x.to(DEVICE), angle)[:, 0].cpu(), torch.from_numpy(ref), atol=1e-5, rtol=0)
    if angle == 90:  # counter-clockwise as displayed
        torch.testing.assert_close(rotate_images(x, 90), torch.rot90(x, 1, dims=(2, 3)), atol=1e-5, rtol=0)


def scipy_rotate(x: torch.Tensor, angle: float) -> torch.Tensor:
    """The independent reference: scipy.ndimage.rotate of each (1, H, W) image."""
    out = [ndi.rotate(im[0].numpy(), angle, reshape=False, order=1, mode="grid-constant") for im in x]
    return torch.from_numpy(np.stack(out)).unsqueeze(1)


def test_rotated_digits_domains_without_sharding(sk_digits):
    x_ref, y_ref = sk_digits
    params = {"train_domains": [0, 15], "test_domains": [60], "shard": False}
    b = load_dataset("rotated-digits", params=params, seed=0)
    assert b.train_domains == ("0", "15") and list(b.test_domains) == ["60"]
    x_all, d_all = torch.cat([b.x_train, b.x_val]), torch.cat([b.d_train, b.d_val])
    assert rows(x_all[d_all == 0]) == rows(x_ref)  # the 0-degree domain is the plain digits
    got15 = x_all[d_all == 1]
    assert len(got15) == len(x_ref) and rows(got15) != rows(x_ref)  # rotation changes the images
    x60, y60 = b.test_domains["60"]  # held-out domains keep the digits' order
    torch.testing.assert_close(x60, scipy_rotate(x_ref, 60), atol=1e-5, rtol=0)
    assert torch.equal(y60, y_ref)
    # the 15-degree training domain holds exactly the 15-degree rotations
    flipped = load_dataset(
        "rotated-digits", params={"train_domains": [0], "test_domains": [15], "shard": False}, seed=0
    )
    x15, _ = flipped.test_domains["15"]
    torch.testing.assert_close(x15, scipy_rotate(x_ref, 15), atol=1e-5, rtol=0)
    assert rows(got15) == rows(x15)


def test_rotated_digits_shards_and_stratifies_by_domain():
    b = load_dataset("rotated-digits", seed=1)
    assert b.train_domains == ("0", "15", "30", "45") and list(b.test_domains) == ["60", "75"]
    held_out = b.heldout()
    assert held_out is not None
    total = len(b.y_train) + len(b.y_val) + len(held_out[1])
    assert total == 1797  # disjoint shards of the 1797 digits
    # validation holds ~20% of every (domain, class) stratum
    val = torch.bincount(b.d_val * 10 + b.y_val, minlength=40).double()
    allc = val + torch.bincount(b.d_train * 10 + b.y_train, minlength=40).double()
    assert torch.equal(val, torch.round(allc * 0.2))
    again = load_dataset("rotated-digits", seed=1)
    other = load_dataset("rotated-digits", seed=2)
    assert torch.equal(again.x_train, b.x_train) and torch.equal(again.test_domains["75"][0], b.test_domains["75"][0])
    assert not torch.equal(other.test_domains["75"][1], b.test_domains["75"][1])


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"train_domains": [0, 15], "test_domains": [15, 60]}, r"test_domains overlaps.*\[15\]"),
        ({"train_domains": [0, 90]}, r"train_domains: 90"),
        ({"test_domains": [60, 60]}, r"test_domains repeats"),
        ({"train_domains": []}, r"train_domains must name"),
        ({"train_domains": "0"}, r"train_domains must be a list"),
    ],
)
def test_rotated_digits_refuses_bad_domains(params, match):
    with pytest.raises(ValueError, match=match):
        load_dataset("rotated-digits", params=params, seed=0)


# ---- synthetic -----------------------------------------------------------------------------------------------


def test_synthetic_shape_determinism_and_learnability():
    params = {"n": 200, "shape": [3, 16, 16], "classes": 5, "noise": 0.3}
    a = load_dataset("synthetic", params=params, seed=7)
    b = load_dataset("synthetic", params=params, seed=7)
    c = load_dataset("synthetic", params=params, seed=8)
    assert a.x_train.shape[1:] == (3, 16, 16) and a.in_shape == (3, 16, 16) and a.num_classes == 5
    assert len(a.y_train) + len(a.y_val) == 200 and len(a.y_val) == 50
    assert torch.equal(a.x_train, b.x_train) and not torch.equal(a.x_train, c.x_train)
    # nearest class mean (computed on train) classifies validation almost perfectly
    means = torch.stack([a.x_train[a.y_train == k].mean(0) for k in range(5)])
    dist = ((a.x_val.unsqueeze(1) - means.unsqueeze(0)) ** 2).flatten(2).sum(-1)
    assert (dist.argmin(1) == a.y_val).float().mean() > 0.95


def test_synthetic_domains():
    b = load_dataset("synthetic", params={"n": 64, "domains": 2, "test_domains": 2, "noise": 0.1}, seed=0)
    assert b.train_domains == ("0", "1") and list(b.test_domains) == ["2", "3"]
    assert torch.bincount(torch.cat([b.d_train, b.d_val])).tolist() == [64, 64]
    base = torch.cat([b.x_train, b.x_val])[torch.cat([b.d_train, b.d_val]) == 0].mean()
    assert abs(float(b.test_domains["3"][0].mean() - base) - 1.5) < 0.05  # 3 x domain_shift
    moved = b.to(DEVICE)
    assert moved.x_train.device.type == DEVICE.type and moved.test_domains["2"][0].device.type == DEVICE.type


# ---- paths: image folders ------------------------------------------------------------------------------------


COLORS = {"blue": (0, 0, 255), "red": (255, 0, 0)}


def make_image_tree(root, per_class: int = 5, classes=COLORS) -> None:
    for cls, color in classes.items():
        (root / cls).mkdir(parents=True)
        for i in range(per_class):
            Image.new("RGB", (10 + i, 12), color).save(root / cls / f"{i}.png")
    (root / "red" / "notes.txt").write_text("not an image")


def test_image_folder_loads_resizes_and_labels(tmp_path):
    make_image_tree(tmp_path / "imgs")
    b = load_dataset("image-folder", params={"path": "imgs", "size": 8}, seed=0, allowed_roots=[tmp_path])
    assert b.classes == ("blue", "red") and b.num_classes == 2 and b.in_shape == (3, 8, 8)
    assert len(b.y_train) + len(b.y_val) == 10 and torch.bincount(b.y_val).tolist() == [1, 1]
    x, y = torch.cat([b.x_train, b.x_val]), torch.cat([b.y_train, b.y_val])
    red = torch.tensor([1.0, 0.0, 0.0]).view(3, 1, 1).expand(3, 8, 8)
    torch.testing.assert_close(x[y == 1], red.expand(5, 3, 8, 8))
    torch.testing.assert_close(x[y == 0], red.roll(2, 0).expand(5, 3, 8, 8))
    gray = load_dataset(
        "image-folder",
        params={"path": str(tmp_path / "imgs"), "size": 4, "grayscale": True},
        seed=0,
        allowed_roots=[tmp_path],
    )
    assert gray.in_shape == (1, 4, 4)
    torch.testing.assert_close(
        gray.x_train[gray.y_train == 1], torch.full_like(gray.x_train[gray.y_train == 1], 76 / 255)
    )


def test_image_folder_with_domains(tmp_path):
    for dom in ("photo", "sketch", "art"):
        make_image_tree(tmp_path / dom, per_class=4)
    params = {"path": str(tmp_path), "size": 4, "train_domains": ["photo", "sketch"], "test_domains": ["art"]}
    b = load_dataset("image-folder", params=params, seed=0, allowed_roots=[tmp_path])
    assert b.train_domains == ("photo", "sketch") and list(b.test_domains) == ["art"]
    assert torch.bincount(torch.cat([b.d_train, b.d_val])).tolist() == [8, 8]
    assert len(b.test_domains["art"][1]) == 8
    with pytest.raises(ValueError, match="disjoint"):
        load_dataset("image-folder", params={**params, "test_domains": ["photo"]}, seed=0, allowed_roots=[tmp_path])
    with pytest.raises(ValueError, match=r"'\.\.'"):
        load_dataset("image-folder", params={**params, "test_domains": [".."]}, seed=0, allowed_roots=[tmp_path])


def test_paths_outside_the_roots_are_refused(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    make_image_tree(outside)
    root.mkdir()
    (root / "link").symlink_to(outside, target_is_directory=True)
    for path in (str(outside), "../outside", str(root / ".." / "outside"), "link", str(root / "link")):
        with pytest.raises(ValueError, match="outside the allowed roots") as err:
            load_dataset("image-folder", params={"path": path}, seed=0, allowed_roots=[root])
        assert path in str(err.value)
    with pytest.raises(ValueError, match="none are configured"):
        load_dataset("image-folder", params={"path": str(outside)}, seed=0)
    # a symlinked image inside the root that points outside is refused too
    make_image_tree(root / "imgs")
    (root / "imgs" / "red" / "sneaky.png").symlink_to(outside / "red" / "0.png")
    with pytest.raises(ValueError, match="sneaky.png"):
        load_dataset("image-folder", params={"path": "imgs"}, seed=0, allowed_roots=[root])


@pytest.mark.parametrize("name", ["image-folder", "cifar10", "char-corpus"])
def test_missing_path_is_named(tmp_path, name):
    missing = tmp_path / "nope"
    with pytest.raises(DatasetNotFoundError, match="nope") as err:
        load_dataset(name, params={"path": str(missing)}, seed=0, allowed_roots=[tmp_path])
    assert str(missing) in str(err.value)
    assert isinstance(err.value, FileNotFoundError) and isinstance(err.value, ValueError)
    with pytest.raises(ValueError, match="path is required"):
        load_dataset(name, seed=0, allowed_roots=[tmp_path])


# ---- CIFAR-10 ------------------------------------------------------------------------------------------------


def write_batch(path, n: int, rng: np.random.Generator) -> tuple[np.ndarray, list[int]]:
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    labels = [i % 10 for i in range(n)]
    batch = {b"batch_label": b"fake", b"labels": labels, b"data": data, b"filenames": [b"x.png"] * n}
    with open(path, "wb") as fh:
        pickle.dump(batch, fh, protocol=2)
    return data, labels


@pytest.fixture
def cifar_dir(tmp_path):
    rng = np.random.default_rng(0)
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    batches = [write_batch(d / f"data_batch_{i}", 20, rng) for i in range(1, 6)]
    test = write_batch(d / "test_batch", 10, rng)
    return d, batches, test


def test_cifar10_reads_batches_in_channel_row_major_order(cifar_dir):
    d, batches, (test_data, test_labels) = cifar_dir
    data, labels = batches[0]
    x, y = read_batch(d / "data_batch_1")
    assert x.shape == (20, 3, 32, 32) and y.tolist() == labels
    rng = np.random.default_rng(1)
    for n, c, i, j in zip(*(rng.integers(0, k, 50) for k in (20, 3, 32, 32)), strict=True):
        assert float(x[n, c, i, j]) == pytest.approx(data[n, c * 1024 + i * 32 + j] / 255.0)
    b = load_dataset("cifar10", params={"path": d.name, "val_fraction": 0.2}, seed=0, allowed_roots=[d.parent])
    assert b.in_shape == (3, 32, 32) and b.num_classes == 10 and b.classes[0] == "airplane"
    assert len(b.y_train) == 80 and torch.bincount(b.y_val).tolist() == [2] * 10
    all_x = torch.cat([torch.from_numpy(bd).float() / 255 for bd, _ in batches]).view(-1, 3, 32, 32)
    assert rows(torch.cat([b.x_train, b.x_val])) == rows(all_x)
    assert b.y_test.tolist() == test_labels and torch.equal(b.x_test, read_batch(d / "test_batch")[0])
    small = load_dataset(
        "cifar10", params={"path": str(d), "n_train": 30, "include_test": False}, seed=0, allowed_roots=[d]
    )
    assert len(small.y_train) == 30 and small.x_test is None


def test_cifar10_missing_file_and_malicious_pickle(cifar_dir, tmp_path):
    d, _, _ = cifar_dir
    (d / "data_batch_3").unlink()
    with pytest.raises(DatasetNotFoundError, match="data_batch_3"):
        load_dataset("cifar10", params={"path": str(d)}, seed=0, allowed_roots=[tmp_path])

    class Exploit:
        def __reduce__(self):
            return (os.getcwd, ())

    with open(d / "data_batch_3", "wb") as fh:
        pickle.dump({b"data": Exploit(), b"labels": []}, fh)
    with pytest.raises(ValueError, match="posix.getcwd|os.getcwd|nt.getcwd"):
        load_dataset("cifar10", params={"path": str(d)}, seed=0, allowed_roots=[tmp_path])


# ---- character corpus ----------------------------------------------------------------------------------------


TEXT = "To be, or not to be, that is the question:\nWhether 'tis nobler — é 中文 — in the mind to suffer\n" * 4


def test_char_corpus_round_trip_and_model(tmp_path):
    (tmp_path / "corpus.txt").write_text(TEXT, encoding="utf-8")
    params = {"path": "corpus.txt", "block_size": 16, "val_fraction": 0.25}
    b = load_dataset("char-corpus", params=params, seed=0, allowed_roots=[tmp_path])
    assert b.task == "language_model" and b.input_kind == "sequence"
    assert b.vocab == "".join(sorted(set(TEXT))) and b.num_classes == len(b.vocab) and b.in_shape == (16,)
    assert torch.equal(b.y_train[:, :-1], b.x_train[:, 1:])  # targets are the next characters
    n = (len(TEXT) - 1) // 16
    chunks = [TEXT[k * 16 : (k + 1) * 16 + 1] for k in range(n)]
    got = [
        decode(x, b.vocab) + b.vocab[int(y[-1])]
        for x, y in zip(torch.cat([b.x_train, b.x_val]), torch.cat([b.y_train, b.y_val]), strict=True)
    ]
    assert Counter(got) == Counter(chunks)
    assert len(b.y_val) == round(0.25 * n)
    other = load_dataset("char-corpus", params=params, seed=1, allowed_roots=[tmp_path])
    assert not torch.equal(other.x_val, b.x_val)
    model = build_model(
        "transformer", params={"n_layer": 1, "n_head": 2, "n_embd": 8}, in_shape=b.in_shape, num_classes=b.num_classes
    )
    assert model(b.x_val).shape == (len(b.x_val), 16, b.num_classes)


def test_char_corpus_refuses_bad_files(tmp_path):
    (tmp_path / "short.txt").write_text("abc", encoding="utf-8")
    with pytest.raises(ValueError, match="short.txt"):
        load_dataset("char-corpus", params={"path": "short.txt", "block_size": 8}, seed=0, allowed_roots=[tmp_path])
    (tmp_path / "latin1.txt").write_bytes("caf\xe9 ".encode("latin-1") * 100)
    with pytest.raises(ValueError, match="latin1.txt.*UTF-8"):
        load_dataset("char-corpus", params={"path": "latin1.txt"}, seed=0, allowed_roots=[tmp_path])


# ---- registry ------------------------------------------------------------------------------------------------


def test_unknown_dataset_and_param_are_refused():
    with pytest.raises(ValueError, match=r"unknown dataset 'mnist'.*cifar10.*digits"):
        load_dataset("mnist", seed=0)
    with pytest.raises(ValueError, match="resolution"):
        load_dataset("digits", params={"resolution": 16}, seed=0)
    with pytest.raises(ValueError, match="allowed_roots"):
        load_dataset("digits", params={"allowed_roots": ["/"]}, seed=0)
    with pytest.raises(ValueError, match="already registered"):
        register_dataset("digits", plugin_loader)


def plugin_loader(*, seed, allowed_roots, n: int = 6) -> DatasetBundle:
    """A plugin dataset for the entry-point test."""
    x = torch.full((n, 2), float(seed))
    y = torch.arange(n) % 2
    return DatasetBundle(x_train=x, y_train=y, x_val=x[:2], y_val=y[:2], in_shape=(2,), num_classes=2)


def test_entry_point_dataset_plugin(monkeypatch):
    ep = metadata.EntryPoint(name="plugin-data", value=f"{__name__}:plugin_loader", group=registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(_plugins.metadata, "entry_points", lambda **kw: [ep] if kw.get("group") == ep.group else [])
    saved = dict(registry._REGISTRY._entries)
    registry._REGISTRY.refresh()
    try:
        assert "plugin-data" in dataset_names()
        assert dataset_info("plugin-data").params == {"n": 6}
        b = load_dataset("plugin-data", params={"n": 4}, seed=3)
        assert b.x_train.shape == (4, 2) and float(b.x_train[0, 0]) == 3.0
    finally:
        registry._REGISTRY._entries.clear()
        registry._REGISTRY._entries.update(saved)
        registry._REGISTRY.refresh()
    assert "plugin-data" not in registry._REGISTRY._entries
