"""A model and tensors given in-process: the ``LocalModel`` view, the factory, the bundle, a child built by it."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import dropsearch
from dropsearch.regularizers.pattern import Site
from dropsearch.workers.child import ChildConfig
from dropsearch.workers.local_model import LocalModel, LocalModelFactory, bundle_from_tensors
from dropsearch.workers.train import ChildTraining


class Net(nn.Module):
    """A user model whose children include names a wrapper might take (``model``, ``inner``)."""

    def __init__(self, num_classes: int = 3, in_shape: tuple[int, ...] = (1, 4, 4)) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_shape[0], 4, 3, padding=1)
        self.drop = nn.Dropout(0.1)
        self.model = nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(4 * in_shape[1] * in_shape[2], num_classes))
        self.inner = nn.Identity()
        self.scale = nn.Parameter(torch.ones(()))
        self.register_buffer("offset", torch.zeros(()))
        self.seen_training: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen_training.append(self.training)
        return self.model(self.inner(self.drop(self.conv(x)))) * self.scale + self.offset


def test_the_view_has_the_models_paths_and_state_and_installs_into_the_model():
    net = Net()
    view = LocalModel(net)
    assert [n for n, _ in view.named_modules()] == [n for n, _ in net.named_modules()]
    assert list(view.state_dict()) == list(net.state_dict())
    assert [id(p) for p in view.parameters()] == [id(p) for p in net.parameters()]
    assert view.get_submodule("model.2") is net.model[2]  # a child called "model" is the child, not the wrapped net
    pattern = {"variant": "bernoulli", "sites": [{"site": "drop", "rate": 0.3}, {"site": "model.1", "rate": 0.5}]}
    dropsearch.apply(view, pattern)
    assert net.drop is view.drop and float(net.drop.p) == pytest.approx(0.3)
    assert float(net.model[1].p) == pytest.approx(0.5)
    view.eval()
    view(torch.zeros(2, 1, 4, 4))
    assert net.training is False and net.drop.training is False and net.seen_training[-1] is False
    view.train()
    view(torch.zeros(2, 1, 4, 4))
    assert net.training is True and net.seen_training[-1] is True


def test_the_view_runs_the_forward_adapter_and_lists_the_given_sites():
    net, sites = Net(), [Site(name="drop", kind="conv", channels=4)]
    view = LocalModel(net, forward=lambda model, x: model(x.view(-1, 1, 4, 4)) * 2, sites=sites)
    x = torch.randn(3, 16)
    view.eval()  # dropout off: both calls are deterministic
    torch.testing.assert_close(view(x), net(x.view(-1, 1, 4, 4)) * 2)
    assert view.dropout_sites() == sites


def test_the_factory_passes_only_the_keywords_model_fn_takes():
    calls = []

    def both(*, num_classes, in_shape):
        calls.append((num_classes, in_shape))
        return Net(num_classes, in_shape)

    view = LocalModelFactory(both)(in_shape=[2, 4, 4], num_classes=5)
    assert calls == [(5, (2, 4, 4))] and isinstance(view, LocalModel)
    assert view(torch.zeros(1, 2, 4, 4)).shape == (1, 5)
    assert LocalModelFactory(lambda num_classes: Net(num_classes))(in_shape=(1, 4, 4), num_classes=7)(
        torch.zeros(1, 1, 4, 4)
    ).shape == (1, 7)
    assert LocalModelFactory(Net)(in_shape=(1, 4, 4), num_classes=2)(torch.zeros(1, 1, 4, 4)).shape == (1, 2)
    assert LocalModelFactory(lambda: Net())(in_shape=(1, 4, 4), num_classes=2)(torch.zeros(1, 1, 4, 4)).shape == (1, 3)
    with pytest.raises(TypeError, match=r"requires \['width'\]"):
        LocalModelFactory(lambda width: Net())
    with pytest.raises(TypeError, match="fresh model on each call .e.g. the class Net., not be a model instance"):
        LocalModelFactory(Net())
    with pytest.raises(TypeError, match="model_fn must be callable"):
        LocalModelFactory("Net")
    with pytest.raises(TypeError, match="returned str"):
        LocalModelFactory(lambda: "net")(in_shape=(1, 4, 4), num_classes=3)


def test_bundle_from_tensors_accepts_pairs_and_tensor_datasets_and_names_the_bad_split():
    x, y = torch.randn(10, 1, 4, 4), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    bundle = bundle_from_tensors(torch.utils.data.TensorDataset(x, y), (x[:4], y[:4].int()))
    assert bundle.in_shape == (1, 4, 4) and bundle.num_classes == 3 and bundle.task == "classification"
    assert bundle.y_val.dtype == torch.int64 and bundle.input_kind == "image"
    ids = torch.randint(0, 50, (6, 8))
    assert bundle_from_tensors((ids, y[:6]), (ids, y[:6]), num_classes=4).input_kind == "sequence"
    with pytest.raises(ValueError, match=r"^train: y must be class ids of shape \(10,\)"):
        bundle_from_tensors((x, y[:9]), (x, y))
    with pytest.raises(ValueError, match="^val: y has a negative class id"):
        bundle_from_tensors((x, y), (x, -y))
    with pytest.raises(TypeError, match=r"^val must be an \(x, y\) pair"):
        bundle_from_tensors((x, y), x)
    with pytest.raises(ValueError, match="num_classes=2 but the labels go up to 2"):
        bundle_from_tensors((x, y), (x, y), num_classes=2)


def test_a_child_built_by_the_factory_trains_under_a_pattern():
    g = torch.Generator().manual_seed(0)
    means = torch.randn(3, 1, 4, 4, generator=g)
    y = torch.arange(300) % 3
    x = means[y] + 0.5 * torch.randn(300, 1, 4, 4, generator=g)
    bundle = bundle_from_tensors((x[:240], y[:240]), (x[240:], y[240:]))
    pattern = {"variant": "bernoulli", "sites": [{"site": "drop", "rate": 0.2}]}
    config = ChildConfig(model="local:Net", dataset="local:tensors", pattern=pattern, epochs=3, lr=1e-2, device="cpu")
    child = ChildTraining(config, bundle=bundle, model_factory=LocalModelFactory(Net))
    assert isinstance(child.model, LocalModel) and float(child.model.drop.p) == pytest.approx(0.2)
    metrics = [child.run_epoch() for _ in range(3)]
    assert metrics[-1]["train_loss"] < metrics[0]["train_loss"]
    assert metrics[-1]["val_accuracy"] > 0.8  # well-separated blobs (chance: 1/3)
    seeds = ChildTraining(
        ChildConfig(**{**config.to_dict(), "seeds": 2}), bundle=bundle, model_factory=LocalModelFactory(Net)
    )
    assert len(seeds.run_epoch()["val_accuracy_seeds"]) == 2  # every seed's model comes from the factory
    assert F.cross_entropy(child.model(x[240:]), y[240:]) < 1.0
