"""``find_sites``: sites of any ``nn.Module`` (existing dropout, stochastic depth, named paths) and their kinds.

The third-party models (torchvision ResNet-18, timm ViT-Tiny, Hugging Face BERT / ResNet / ViT) are built from
configs only: nothing is downloaded.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import dropsearch
from dropsearch.regularizers import Site
from dropsearch.regularizers.bernoulli import BernoulliDropout
from dropsearch.regularizers.conv_pattern import PatternDropout2d
from dropsearch.regularizers.find_sites import find_sites, is_stochastic_depth
from dropsearch.regularizers.sequence_pattern import SequencePatternDropout
from tests._optional import import_or_skip

CONV_TOKENS = {"size": 2, "stride": 1, "repeat": 1, "rotate": 0, "shear_x": 0.0, "shear_y": 0.0, "share_c": True}
SEQ_TOKENS = {"size": 2, "stride": 1, "share": True}
#: The size of the tiny Hugging Face BERT and ViT built from configs (their sequence sites have 16 channels).
TINY_TRANSFORMER = {"hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 32}


class DropPath(nn.Module):
    """A stochastic-depth layer as timm writes it (same class name): drops whole examples of a residual branch."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        keep = torch.rand(x.shape[0], *([1] * (x.dim() - 1))) >= self.p
        return x * keep / (1 - self.p)


class Block(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)
        self.drop_path = DropPath(0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.drop_path(torch.relu(self.conv(x)))


class SmallNet(nn.Module):
    """Conv stem, two residual blocks with drop path, pooled features, a dropout and a classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.layer1 = nn.Sequential(Block(8), Block(8))
        self.layer2 = nn.Sequential(Block(8), Block(8))
        self.unused = nn.Dropout(0.3)  # never called in forward
        self.hidden = nn.Linear(8, 12)
        self.drop = nn.Dropout(0.2)
        self.fc = nn.Linear(12, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer2(self.layer1(torch.relu(self.stem(x))))
        return self.fc(self.drop(torch.relu(self.hidden(x.mean((2, 3))))))


def test_existing_dropout_and_stochastic_depth_are_the_default_sites_in_forward_order():
    sites = find_sites(SmallNet(), torch.randn(2, 3, 8, 8))
    assert sites == [
        Site("layer1.0.drop_path", "conv", 8),
        Site("layer1.1.drop_path", "conv", 8),
        Site("layer2.0.drop_path", "conv", 8),
        Site("layer2.1.drop_path", "conv", 8),
        Site("drop", "features", 12),
    ]
    assert is_stochastic_depth(DropPath(0.1)) and not is_stochastic_depth(nn.Dropout())


def test_kinds_from_the_recorded_shapes_linear_sequence_and_features():
    class Tokens(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(20, 6)
            self.tok_drop = nn.Dropout(0.1)
            self.mid = nn.Linear(6, 5)
            self.mid_drop = nn.Dropout(0.1)
            self.out_drop = nn.Dropout(0.1)
            self.head = nn.Linear(5, 2)

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            h = self.tok_drop(self.emb(ids))  # (B, T, 6)
            h = self.mid_drop(self.mid(h.mean(1)))  # (B, 5)
            return self.head(self.out_drop(torch.relu(h)))

    sites = find_sites(Tokens(), torch.randint(0, 20, (3, 7)))
    assert sites == [Site("tok_drop", "sequence", 6), Site("mid_drop", "linear", 5), Site("out_drop", "features", 5)]


def test_named_paths_with_globs_and_the_model_is_left_in_its_mode():
    model = SmallNet().train()
    sites = find_sites(model, torch.randn(2, 3, 8, 8), paths=["layer*.1", "hidden"])
    assert sites == [Site("layer1.1", "conv", 8), Site("layer2.1", "conv", 8), Site("hidden", "features", 12)]
    assert model.training
    assert find_sites(model.eval(), torch.randn(2, 3, 8, 8), paths="stem") == [Site("stem", "conv", 8)]
    assert not model.training


def test_bad_paths_are_refused_with_the_closest_module_paths():
    model = SmallNet()
    x = torch.randn(2, 3, 8, 8)
    with pytest.raises(ValueError, match=r"'layer3\.\*' matches no module of SmallNet; closest module paths: 'layer2"):
        find_sites(model, x, paths=["layer3.*"])
    with pytest.raises(ValueError, match=r"never reaches site\(s\) \['unused'\]"):
        find_sites(model, x, paths=["unused", "drop"])
    with pytest.raises(ValueError, match="has no dropout or stochastic-depth layer"):
        find_sites(nn.Sequential(nn.Linear(4, 2)), torch.randn(1, 4))


def test_keyword_inputs_and_non_tensor_outputs():
    class Pair(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = nn.LSTM(4, 6, batch_first=True)
            self.fc = nn.Linear(6, 2)

        def forward(self, x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
            out, _ = self.lstm(x * scale)
            return self.fc(out[:, -1])

    model = Pair()
    assert find_sites(model, {"x": torch.randn(2, 5, 4), "scale": 2.0}, paths=["fc"]) == [Site("fc", "features", 2)]
    with pytest.raises(ValueError, match="site 'lstm' returns no tensor"):
        find_sites(model, (torch.randn(2, 5, 4),), paths=["lstm"])


def _train(model: nn.Module, applied, inputs, targets, loss_fn, steps: int = 12, lr: float = 3e-3) -> list[float]:
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    return [float(applied.training_step(inputs, targets, loss_fn, optimizer)) for _ in range(steps)]


def _falls(losses: list[float]) -> bool:
    return sum(losses[-3:]) / 3 < sum(losses[:3]) / 3


def test_apply_back_round_trip_on_a_fresh_instance_trains_with_falling_loss():
    torch.manual_seed(0)
    sites = find_sites(SmallNet(), torch.randn(2, 3, 8, 8), paths=["layer*.*.drop_path", "drop"])
    pattern = {
        "variant": "autodropout",
        "sites": [
            {"site": s.name, "rate": 0.2, "shape": CONV_TOKENS if s.kind == "conv" else SEQ_TOKENS}
            for s in sites
            if s.kind == "conv"
        ],
    }
    fresh = SmallNet()
    applied = dropsearch.apply(fresh, pattern, sites=sites)
    assert all(isinstance(fresh.get_submodule(s.name), PatternDropout2d) for s in sites if s.kind == "conv")
    x, y = torch.randn(16, 3, 8, 8), torch.arange(16) % 3
    assert _falls(_train(fresh, applied, x, y, F.cross_entropy))


def _tiny_bert(transformers):
    config = transformers.BertConfig(vocab_size=40, max_position_embeddings=16, num_labels=3, **TINY_TRANSFORMER)
    torch.manual_seed(0)
    return transformers.BertForSequenceClassification(config)


def test_hugging_face_bert_sites_and_a_sequence_pattern_applied_to_a_fresh_model():
    transformers = import_or_skip("transformers")
    ids = torch.randint(0, 40, (8, 10))
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    sites = find_sites(_tiny_bert(transformers), batch)
    assert [s.name for s in sites] == [
        "bert.embeddings.dropout",
        "bert.encoder.layer.0.attention.output.dropout",
        "bert.encoder.layer.0.output.dropout",
        "bert.encoder.layer.1.attention.output.dropout",
        "bert.encoder.layer.1.output.dropout",
        "dropout",
    ]
    assert [s.kind for s in sites] == ["sequence"] * 5 + ["features"]
    assert {s.channels for s in sites} == {16}
    pattern = {
        "variant": "autodropout",
        "sites": [{"site": s.name, "rate": 0.2, "shape": SEQ_TOKENS} for s in sites if s.kind == "sequence"],
    }
    fresh = _tiny_bert(transformers)
    applied = dropsearch.apply(fresh, pattern, sites=sites)
    assert isinstance(fresh.bert.encoder.layer[1].output.dropout, SequencePatternDropout)

    def loss_fn(outputs, targets):
        return F.cross_entropy(outputs.logits, targets)

    assert _falls(_train(fresh, applied, ids, torch.arange(8) % 3, loss_fn, lr=1e-3))


def test_hugging_face_resnet18_blocks_as_conv_sites_by_glob():
    transformers = import_or_skip("transformers")
    config = transformers.ResNetConfig(
        layer_type="basic", depths=[2, 2, 2, 2], hidden_sizes=[64, 128, 256, 512], embedding_size=64, num_labels=4
    )
    sites = find_sites(
        transformers.ResNetForImageClassification(config),
        torch.randn(2, 3, 32, 32),
        paths=["resnet.encoder.stages.*.layers.?"],
    )
    assert [(s.name.split("stages.")[1], s.kind, s.channels) for s in sites] == [
        (f"{i}.layers.{j}", "conv", c) for i, c in enumerate((64, 128, 256, 512)) for j in (0, 1)
    ]


def test_hugging_face_vit_dropout_layers_are_sequence_sites():
    transformers = import_or_skip("transformers")
    config = transformers.ViTConfig(image_size=32, patch_size=4, num_labels=10, **TINY_TRANSFORMER)
    sites = find_sites(transformers.ViTForImageClassification(config), torch.randn(2, 3, 32, 32))
    assert sites and all(s.kind == "sequence" and s.channels == 16 for s in sites)


def test_torchvision_resnet18_blocks_by_glob_and_a_bernoulli_pattern_on_a_fresh_instance():
    models = import_or_skip("torchvision.models")
    torch.manual_seed(0)
    sites = find_sites(models.resnet18(num_classes=4), torch.randn(2, 3, 32, 32), paths=["layer*.*"])
    assert [(s.name, s.kind, s.channels) for s in sites] == [
        (f"layer{i}.{j}", "conv", c) for i, c in zip((1, 2, 3, 4), (64, 128, 256, 512), strict=True) for j in (0, 1)
    ]
    fresh = models.resnet18(num_classes=4)
    pattern = {"variant": "bernoulli", "sites": [{"site": s.name, "rate": 0.1} for s in sites]}
    applied = dropsearch.apply(fresh, pattern, sites=sites)
    assert isinstance(fresh.layer4[1].dropsearch_drop, BernoulliDropout)
    x, y = torch.randn(8, 3, 32, 32), torch.arange(8) % 4
    assert _falls(_train(fresh, applied, x, y, F.cross_entropy, steps=8, lr=1e-3))


def test_timm_vit_tiny_drop_path_and_dropout_sites():
    timm = import_or_skip("timm")
    kwargs = {
        "pretrained": False,
        "img_size": 32,
        "patch_size": 4,
        "num_classes": 10,
        "depth": 2,
        "drop_rate": 0.1,
        "proj_drop_rate": 0.1,
        "drop_path_rate": 0.1,
    }
    torch.manual_seed(0)
    sites = find_sites(timm.create_model("vit_tiny_patch16_224", **kwargs), torch.randn(2, 3, 32, 32))
    names = [s.name for s in sites]
    assert "blocks.1.drop_path1" in names and "blocks.1.drop_path2" in names
    assert all(s.kind == "sequence" and s.channels == 192 for s in sites if s.name.startswith("blocks."))
    fresh = timm.create_model("vit_tiny_patch16_224", **kwargs)
    pattern = {
        "variant": "autodropout",
        "sites": [{"site": s.name, "rate": 0.2, "shape": SEQ_TOKENS} for s in sites if s.kind == "sequence"],
    }
    applied = dropsearch.apply(fresh, pattern, sites=sites)
    assert isinstance(fresh.blocks[1].drop_path1, SequencePatternDropout)  # the DropPath was replaced
    x, y = torch.randn(8, 3, 32, 32), torch.arange(8) % 10
    assert _falls(_train(fresh, applied, x, y, F.cross_entropy, steps=8, lr=1e-3))
