"""Domain ids travel from the dataset through the trainer to GSNR dropout (its domain estimator and meta split)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import dropsearch
from dropsearch.regularizers import gsnr as gsnr_module
from dropsearch.regularizers import gsnr_dropout
from dropsearch.workers.child import ChildConfig
from dropsearch.workers.datasets import load_dataset
from dropsearch.workers.device_data import DeviceData
from dropsearch.workers.train import ChildTraining


def test_batches_with_domains_follow_the_same_order():
    n = 37
    data = DeviceData(torch.arange(n).float().view(n, 1), torch.arange(n) % 3, {}, torch.arange(n) % 4)
    plain = list(data.train_batches(8, torch.Generator().manual_seed(1)))
    with_d = list(data.train_batches_with_domains(8, torch.Generator().manual_seed(1)))
    assert len(plain) == len(with_d) == 5
    for (x, y), (x2, y2, d) in zip(plain, with_d, strict=True):
        assert torch.equal(x, x2) and torch.equal(y, y2)
        assert torch.equal(d, x.view(-1).long() % 4) and d.dtype == torch.int64  # each example's own domain
    data.shard(1, 3)
    assert torch.equal(data.d_train, torch.arange(1, 36, 3) % 4) and len(data.d_train) == len(data.x_train)
    bare = DeviceData(torch.zeros(4, 1), torch.zeros(4, dtype=torch.int64), {})
    assert all(d is None for _, _, d in bare.train_batches_with_domains(2, torch.Generator()))


def test_training_step_passes_domains_only_to_helpers_that_use_them():
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Identity(), nn.Linear(8, 3))
    x, y = torch.randn(6, 4), torch.tensor([0, 1, 2, 0, 1, 2])
    plain = dropsearch.apply(net, {"variant": "bernoulli", "sites": [{"site": "2", "rate": 0.2}]})
    assert torch.isfinite(plain.training_step(x, y, F.cross_entropy, domains=torch.tensor([0, 0, 1, 1, 2, 2])))
    with pytest.raises(ValueError, match=r"domains must be an integer tensor of shape \(6,\)"):
        plain.training_step(x, y, F.cross_entropy, domains=torch.zeros(5, dtype=torch.int64))
    with pytest.raises(ValueError, match="domains must be an integer tensor"):
        plain.training_step(x, y, F.cross_entropy, domains=torch.zeros(6))
    gsnr = dropsearch.apply(net, {"variant": "gsnr", "params": {"p": 0.2, "estimator": "domain"}})
    assert gsnr.helper.uses_domains
    gsnr.training_step(x, y, F.cross_entropy, domains=torch.tensor([0, 0, 1, 1, 2, 2]))
    with pytest.raises(ValueError, match="the domain estimator needs domains"):
        gsnr.training_step(x, y, F.cross_entropy)


@pytest.fixture(scope="module")
def rotated():
    return load_dataset("rotated-digits", params={}, seed=0)


def _gsnr_mlp(dataset: str, hidden: list[int], params: dict, **config) -> ChildConfig:
    """An MLP of ``hidden`` widths on ``dataset`` with GSNR dropout (``params``), on the CPU."""
    pattern = {"variant": "gsnr", "params": params}
    return ChildConfig(
        model="mlp", model_params={"hidden": hidden}, dataset=dataset, pattern=pattern, device="cpu", **config
    )


def _domain_of(bundle) -> dict[bytes, set[int]]:
    """Each training image (exact bytes) -> the domains it appears in (an independent lookup)."""
    out: dict[bytes, set[int]] = {}
    for x, d in zip(bundle.x_train, bundle.d_train.tolist(), strict=True):
        out.setdefault(x.numpy().tobytes(), set()).add(d)
    return out


def test_gsnr_domain_estimator_groups_by_the_rotation_of_each_example(rotated, monkeypatch):
    torch.set_num_threads(1)
    calls, groupings = [], []
    real_stats, real_groups = gsnr_dropout.gsnr_stats, gsnr_module._groups

    def spy_stats(model, loss_fn, inputs, targets, **kw):
        calls.append((inputs.clone(), None if kw.get("domains") is None else kw["domains"].clone()))
        return real_stats(model, loss_fn, inputs, targets, **kw)

    def spy_groups(x, y, estimator, chunks, domains):
        pieces = real_groups(x, y, estimator, chunks, domains)
        groupings.append((domains.clone(), [m for _, _, m in pieces], [xg[0].clone() for xg, _, _ in pieces]))
        return pieces

    monkeypatch.setattr(gsnr_dropout, "gsnr_stats", spy_stats)
    monkeypatch.setattr(gsnr_module, "_groups", spy_groups)
    cfg = _gsnr_mlp("rotated-digits", [32, 32], {"p": 0.1, "estimator": "domain"}, epochs=3, batch_size=64, lr=3e-3)
    child = ChildTraining(cfg, bundle=rotated)
    child.run_epoch()
    n = len(rotated.y_train)
    used = n if n % 64 != 1 else n - 1  # a last batch of one example is skipped
    assert len(calls) == len(groupings) == -(-used // 64)
    lookup = _domain_of(rotated)
    seen = torch.zeros(len(rotated.train_domains), dtype=torch.int64)
    for (inputs, domains), (gdomains, sizes, group_x) in zip(calls, groupings, strict=True):
        assert domains is not None and domains.dtype == torch.int64 and torch.equal(domains, gdomains)
        for x, d in zip(inputs, domains.tolist(), strict=True):
            assert d in lookup[x.numpy().tobytes()]  # the id is that example's own rotation
        present = torch.bincount(domains, minlength=len(rotated.train_domains))
        assert sizes == present[present > 0].tolist()  # one GSNR group per rotation, sized by its examples
        for xg, d in zip(group_x, domains.unique().tolist(), strict=True):
            assert all(d in lookup[x.numpy().tobytes()] for x in xg)
        seen += present
    missing = torch.bincount(rotated.d_train) - seen  # every training example used, with its domain, once
    assert int(seen.sum()) == used and int(missing.min()) >= 0 and int(missing.sum()) == n - used
    monkeypatch.undo()
    child.run_epoch()
    assert child.run_epoch()["val_accuracy"] > 0.25  # it learns (chance: 0.10; no dropout: about 0.66 here)


def test_gsnr_meta_split_holds_out_a_rotation(rotated, monkeypatch):
    splits = []
    real = gsnr_dropout.meta_ratio_slope

    def spy(model, loss_fn, gsnr, inputs, targets, **kw):
        from dropsearch.regularizers._gsnr_meta import meta_split

        train_idx, test_idx = meta_split(inputs.shape[0], kw["domains"], inputs.device, None)
        splits.append((kw["domains"], train_idx, test_idx))
        return real(model, loss_fn, gsnr, inputs, targets, **kw)

    monkeypatch.setattr(gsnr_dropout, "meta_ratio_slope", spy)
    cfg = _gsnr_mlp("rotated-digits", [32, 32], {"p": 0.1, "meta": True}, epochs=1, batch_size=64)
    ChildTraining(cfg, bundle=rotated).run_epoch()
    assert splits  # a meta update every 10 steps
    for domains, train_idx, test_idx in splits:
        assert domains is not None
        held = domains[test_idx].unique()
        assert held.numel() == 1 and held.item() not in domains[train_idx].tolist()


def test_domain_estimator_without_domains_is_refused_clearly():
    cfg = _gsnr_mlp("digits", [16, 16], {"p": 0.1, "estimator": "domain"}, epochs=1)
    with pytest.raises(ValueError, match="the domain estimator needs domains"):
        ChildTraining(cfg).run_epoch()


def test_evaluate_test_scores_the_test_split_only_when_asked():
    bundle = load_dataset("mnist1d", params={"n_train": 500}, seed=0)
    cfg = ChildConfig(model="mlp", model_params={"hidden": [32]}, dataset="mnist1d", pattern={}, epochs=1)
    child = ChildTraining(replace_pattern(cfg), bundle=bundle)
    metrics = child.run_epoch()
    assert not any(k.startswith("test_") for k in metrics)  # never part of an epoch's report
    test = child.evaluate_test()
    child.model.eval()
    with torch.no_grad():
        logits = child.model(bundle.x_test)
    assert test["test_accuracy"] == pytest.approx(float((logits.argmax(-1) == bundle.y_test).float().mean()))
    assert test["test_loss"] == pytest.approx(float(F.cross_entropy(logits, bundle.y_test)), rel=1e-5)
    assert ChildTraining(replace_pattern(cfg), bundle=load_dataset("digits", seed=0)).evaluate_test() == {}


def replace_pattern(cfg: ChildConfig) -> ChildConfig:
    from dataclasses import replace

    return replace(cfg, pattern={"variant": "none"}, device="cpu")
