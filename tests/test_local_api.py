"""``dropsearch.optimize``: whole searches over user-defined models on a real local Ray, and its input checks.

The Ray tests (``slow``) search over a small CNN on scikit-learn digits tensors and over a Hugging Face BERT-tiny
classifier on a synthetic token task; each returned pattern is installed into a fresh instance of the user's model
with ``dropsearch.apply`` and trained. The torchvision and timm tests skip, naming the import error, where those
libraries cannot be imported (PyPI's torchvision next to the CPU torch build; see docs/OWN_MODEL.md).
"""

from __future__ import annotations

import math
from collections import defaultdict

import pydantic
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import dropsearch
from dropsearch.workers.local_model import LocalModel
from tests._optional import import_or_skip


class SmallCNN(nn.Module):
    """A user model: two conv blocks and a linear head, with three ``nn.Dropout`` layers."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.drop1 = nn.Dropout(0.1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.drop2 = nn.Dropout(0.1)
        self.head_drop = nn.Dropout(0.1)
        self.head = nn.Linear(32 * 4 * 4, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.drop1(F.relu(self.conv1(x)))  # (B, 16, 8, 8)
        h = self.drop2(F.max_pool2d(F.relu(self.conv2(h)), 2))  # (B, 32, 4, 4)
        return self.head(self.head_drop(h.flatten(1)))  # (B, 10)


def digits_split() -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """scikit-learn's digits as (N, 1, 8, 8) floats in [0, 1]: 1400 training and 397 validation images."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = torch.as_tensor(x, dtype=torch.float32).view(-1, 1, 8, 8) / 16.0
    y = torch.as_tensor(y, dtype=torch.int64)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    x, y = x[order], y[order]
    return (x[:1400], y[:1400]), (x[1400:], y[1400:])


def train_losses(model: nn.Module, pattern: dict, x: torch.Tensor, y: torch.Tensor, steps: int, **kw) -> list[float]:
    """Install ``pattern`` into ``model`` and train it for ``steps`` Adam steps of 64 examples; the losses."""
    applied = dropsearch.apply(model, pattern, **kw)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(1)
    losses = []
    model.train()
    for _ in range(steps):
        idx = torch.randint(len(y), (64,), generator=g)
        losses.append(float(applied.training_step(x[idx], y[idx], F.cross_entropy, optimizer)))
    return losses


def mean(values: list[float]) -> float:
    return math.fsum(values) / len(values)


@pytest.mark.slow
@pytest.mark.usefixtures("local_ray")
def test_optimize_small_cnn_on_digits_tensors():
    train, val = digits_split()
    result = dropsearch.optimize(
        SmallCNN,
        train,
        val,
        budget={"trials": 8, "epochs_per_trial": 3, "max_concurrent": 2},
        validation={"top_k": 1, "seeds": 2},
        training={"batch_size": 64, "lr": 3e-3},
        seed=0,
    )
    assert result.status == "succeeded"
    assert [s.name for s in result.sites] == ["drop1", "drop2", "head_drop"]
    assert [s.kind for s in result.sites] == ["conv", "conv", "features"]
    # 8 search trials of the default controller, each with its pattern over the model's own sites
    search = result.search_trials
    assert len(search) == 8 and len({t.index for t in search}) == 8
    assert all(t.status in ("succeeded", "stopped") for t in result.trials), [t.error for t in result.trials]
    for t in search:
        assert t.pattern is not None
        assert {s["site"] for s in t.pattern.get("sites", [])} <= {"drop1", "drop2", "head_drop"}
    scored = [t for t in search if t.reward is not None]
    assert scored and all(0.0 <= t.reward <= 1.0 for t in scored)
    best = max(scored, key=lambda t: t.reward)
    assert result.best_reward == best.reward and result.best_search_pattern == best.pattern
    assert best.reward > 0.5  # the user's CNN really trained on the digits (chance: 0.1)
    # the validation stage: the best search pattern and no dropout, 2 paired seeds each
    report = result.validation
    runs = [t for t in result.trials if t.kind == "validation"]
    assert report is not None and len(runs) == 4
    by_arm: dict[str, list[float]] = defaultdict(list)
    for run in runs:
        by_arm[run.arm].append(run.reward)
    assert sorted(len(v) for v in by_arm.values()) == [2, 2]
    for arm in report["arms"]:  # each arm's mean is the mean of its runs' rewards (independent reference)
        assert arm["mean"] == pytest.approx(mean(by_arm[arm["name"]]), abs=1e-9)
    assert report["chosen"] in by_arm and result.pattern == report["pattern"]
    chosen_pattern = {run.arm: run.pattern for run in runs}[report["chosen"]]
    assert chosen_pattern == result.pattern
    # the returned patterns install into FRESH instances of the user's model, which then train
    x, y = train
    for pattern in (result.pattern, result.best_search_pattern):
        torch.manual_seed(0)
        losses = train_losses(SmallCNN(), pattern, x, y, steps=60)
        first, last = mean(losses[:10]), mean(losses[-10:])
        assert last < 0.8 * first, (pattern["variant"], first, last)


VOCAB, LENGTH, MARKER = 100, 16, 1


def tiny_bert(num_classes: int) -> nn.Module:
    """A user model: BERT-tiny from a config (no download): hidden 32, 2 layers, 2 heads, vocabulary 100."""
    import transformers

    config = transformers.BertConfig(
        vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=LENGTH, num_labels=num_classes,
    )  # fmt: skip
    return transformers.BertForSequenceClassification(config)


def bert_logits(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """The forward adapter: token ids (B, T) -> class logits (B, K)."""
    return model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits


def marker_task(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, 16) random token ids in [2, 100); label 1 when the marker token 1 appears (half of the rows)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(2, VOCAB, (n, LENGTH), generator=g)
    y = torch.arange(n) % 2
    where = torch.randint(LENGTH, (n,), generator=g)
    ids[y == 1, where[y == 1]] = MARKER
    return ids, y


@pytest.mark.slow
@pytest.mark.usefixtures("local_ray")
def test_optimize_hugging_face_bert_tiny_on_a_token_task():
    pytest.importorskip("transformers")
    train, val = marker_task(640, seed=0), marker_task(256, seed=1)
    result = dropsearch.optimize(
        tiny_bert,
        train,
        val,
        forward=bert_logits,
        # the default variants (GradAug is left out of a space with sequence sites), but GSNR's per-example
        # gradients (torch.func.vmap) cannot trace BERT's data-dependent forward: its micro-batch estimator only
        space={"choices": {"gsnr/estimator": ["microbatch"]}},
        budget={"trials": 8, "epochs_per_trial": 4, "max_concurrent": 2},
        validation={"enabled": False},
        training={"batch_size": 32, "lr": 3e-3},
        seed=0,
    )
    assert result.status == "succeeded" and result.validation is None
    names = {s.name: s.kind for s in result.sites}  # found without naming them
    assert names["bert.embeddings.dropout"] == "sequence"
    assert names["bert.encoder.layer.1.output.dropout"] == "sequence"
    assert names["dropout"] == "features"
    assert len(result.search_trials) == 8 and all(t.kind == "search" for t in result.trials)
    assert all(t.status in ("succeeded", "stopped") for t in result.trials), [t.error for t in result.trials]
    assert {t.pattern["variant"] for t in result.search_trials} <= {"bernoulli", "autodropout", "gsnr", "ydrop"}
    scored = [t for t in result.search_trials if t.reward is not None]
    assert scored and result.best_reward == max(t.reward for t in scored)
    assert result.best_reward > 0.6  # the marker task was learned by some child (chance: 0.5)
    assert result.pattern == result.best_search_pattern  # no validation stage: the best search trial's pattern
    # the pattern installs into a fresh BERT (sites are its own module paths) and it trains; it is applied through
    # the same view the search trained (logits from token ids), which GSNR's and Y-Drop's steps need
    x, y = train
    torch.manual_seed(0)
    model = tiny_bert(2)
    sites = dropsearch.find_sites(model, {"input_ids": x[:2]})
    assert {s["site"] for s in result.pattern["sites"]} <= {s.name for s in sites}
    applied = dropsearch.apply(LocalModel(model, bert_logits), result.pattern, sites=sites)
    for path, module in applied.modules.items():  # installed in the model itself
        assert model.get_submodule(path) is module or model.get_submodule(path).dropsearch_drop is module
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(1)
    losses = []
    for _ in range(100):
        idx = torch.randint(len(y), (32,), generator=g)
        losses.append(float(applied.training_step(x[idx], y[idx], F.cross_entropy, optimizer)))
    assert mean(losses[-10:]) < 0.8 * mean(losses[:10]), result.pattern["variant"]
    # every variant the search could pick applies to a fresh BERT the same way and trains
    for variant in ("ydrop", "gsnr"):
        torch.manual_seed(0)
        model = tiny_bert(2)
        pattern = {"variant": "gsnr", "params": {"p": 0.1, "estimator": "microbatch"}}
        if variant == "ydrop":
            pattern = {"variant": "ydrop", "sites": [{"site": "dropout", "rate": 0.1}]}
        applied = dropsearch.apply(LocalModel(model, bert_logits), pattern, sites=sites)
        optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
        losses = []
        for _ in range(100):
            idx = torch.randint(len(y), (32,), generator=g)
            losses.append(float(applied.training_step(x[idx], y[idx], F.cross_entropy, optimizer)))
        assert mean(losses[-10:]) < 0.8 * mean(losses[:10]), variant


def rgb_digits(n_train: int, n_val: int, size: int):
    """Digits as (N, 3, size, size) images (gray repeated, bilinearly resized): small inputs for zoo models."""
    (x, y), (xv, yv) = digits_split()

    def rgb(images: torch.Tensor) -> torch.Tensor:
        return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False).repeat(1, 3, 1, 1)

    return (rgb(x[:n_train]), y[:n_train]), (rgb(xv[:n_val]), yv[:n_val])


@pytest.mark.slow
@pytest.mark.usefixtures("local_ray")
def test_optimize_torchvision_resnet18_blocks_named_by_glob():
    models = import_or_skip("torchvision.models")
    train, val = rgb_digits(256, 128, 16)
    result = dropsearch.optimize(
        lambda num_classes: models.resnet18(num_classes=num_classes),
        train,
        val,
        sites=["layer*.*"],  # no dropout inside: regularize the residual blocks' outputs
        space={"variants": ["bernoulli", "dropblock"]},
        budget={"trials": 4, "epochs_per_trial": 1, "max_concurrent": 2},
        validation={"enabled": False},
    )
    assert [s.name for s in result.sites] == [f"layer{i}.{j}" for i in (1, 2, 3, 4) for j in (0, 1)]
    assert len(result.search_trials) == 4 and result.pattern is not None
    fresh = models.resnet18(num_classes=10)
    losses = train_losses(fresh, result.pattern, *train, steps=20, sites=result.sites)
    assert mean(losses[-5:]) < mean(losses[:5])


@pytest.mark.slow
@pytest.mark.usefixtures("local_ray")
def test_optimize_timm_vit_tiny_dropout_and_drop_path_sites():
    timm = import_or_skip("timm")
    kwargs = {"pretrained": False, "img_size": 16, "patch_size": 4, "depth": 2, "drop_rate": 0.1}
    kwargs.update(proj_drop_rate=0.1, drop_path_rate=0.1)
    train, val = rgb_digits(256, 128, 16)
    result = dropsearch.optimize(
        lambda num_classes: timm.create_model("vit_tiny_patch16_224", num_classes=num_classes, **kwargs),
        train,
        val,
        space={"variants": ["bernoulli", "autodropout"]},
        budget={"trials": 4, "epochs_per_trial": 1, "max_concurrent": 2},
        validation={"enabled": False},
    )
    assert result.sites and all(s.kind in ("sequence", "features") for s in result.sites)
    assert len(result.search_trials) == 4 and result.pattern is not None
    fresh = timm.create_model("vit_tiny_patch16_224", num_classes=10, **kwargs)
    losses = train_losses(fresh, result.pattern, *train, steps=20, sites=result.sites)
    assert mean(losses[-5:]) < mean(losses[:5])


# -- input checks (no Ray: they fail before the search starts) --


def test_a_bad_spec_section_names_its_field():
    train, val = digits_split()
    with pytest.raises(pydantic.ValidationError, match=r"budget\.trials"):
        dropsearch.optimize(SmallCNN, train, val, budget={"trials": 0})
    with pytest.raises(pydantic.ValidationError, match=r"space\.variants"):
        dropsearch.optimize(SmallCNN, train, val, space={"variants": ["no-such-variant"]})
    with pytest.raises(pydantic.ValidationError, match=r"controller\.bogus"):
        dropsearch.optimize(SmallCNN, train, val, controller={"bogus": 1})
    with pytest.raises(ValueError, match=r"resources\.workers_per_trial"):
        dropsearch.optimize(SmallCNN, train, val, resources={"workers_per_trial": 2})


def test_bad_data_and_models_are_refused_with_a_clear_message():
    train, val = digits_split()
    with pytest.raises(ValueError, match=r"^val: y must hold integer class ids"):
        dropsearch.optimize(SmallCNN, train, (val[0], val[1].float()))
    with pytest.raises(ValueError, match=r"train and val inputs differ"):
        dropsearch.optimize(SmallCNN, train, (val[0][:, :, :4], val[1]))
    with pytest.raises(TypeError, match=r"requires \['width'\]"):
        dropsearch.optimize(lambda width: SmallCNN(), train, val)
    with pytest.raises(TypeError, match="returned int, not an nn.Module"):
        dropsearch.optimize(lambda: 3, train, val)
    with pytest.raises(ValueError, match=r"^Sequential has no dropout .* with sites=\[\.\.\.\]"):
        dropsearch.optimize(lambda: nn.Sequential(nn.Flatten(), nn.Linear(64, 10)), train, val)
    with pytest.raises(
        ValueError, match=r"'conv9' matches no module of SmallCNN; closest module paths: 'conv2', 'conv1'"
    ):
        dropsearch.optimize(SmallCNN, train, val, sites=["conv9"])


def test_only_the_local_api_gives_the_engine_a_prepared_search_or_a_model_factory():
    """The service path (API, runner, execution) never passes ``prepared=`` or a factory: those come in-process."""
    import ast
    from pathlib import Path

    root = Path(dropsearch.__file__).parent
    givers = set()
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            func = getattr(node.func, "id", getattr(node.func, "attr", ""))
            keywords = {k.arg for k in node.keywords}
            if (func == "run_search" and "prepared" in keywords) or (
                func == "PreparedSearch" and "model_factory" in keywords
            ):
                givers.add(f"{path.relative_to(root)}:{func}")
    assert givers == {"runner/local_search.py:run_search", "runner/local_search.py:PreparedSearch"}
