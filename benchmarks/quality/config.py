"""Study sizes (tiny for CI, default for 2 CPU cores in about an hour, full for GPUs) and the baseline patterns."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

__all__ = ["StudySize", "SIZES", "SEARCH_VARIANTS", "baseline_patterns", "bernoulli_pattern", "sites_of"]

#: The searched variants: every variant except ``largedrop``, whose pre-training phase is a child-config field
#: (``training.pretrain_epochs``) and not a pattern token, so a search cannot give it to largedrop trials only.
SEARCH_VARIANTS = ("none", "bernoulli", "spatial", "dropblock", "autodropout", "gsnr", "ydrop", "gradaug")

#: The convnet's dropout sites: (name, kind); a 2-block convnet has no ``features.drop3`` (see :func:`sites_of`).
_SITES = (
    ("features.drop1", "conv"),
    ("features.drop2", "conv"),
    ("features.drop3", "conv"),
    ("head.drop", "features"),
)


@dataclass(frozen=True)
class StudySize:
    """How big the study is.

    Args:
        name: ``tiny``, ``default`` or ``full``.
        datasets: study dataset -> dataset params (see :mod:`benchmarks.quality.data`).
        widths: channels of the child convnet.
        wider: channels of the wider child the best pattern is transferred to.
        epochs: training epochs of every child (very-large dropout: pre-training + fine-tuning together).
        batch_size: examples per step of every child (Adam, learning rate 1e-3).
        seeds: training seeds of the baselines and re-trainings.
        search_seeds: seeds of the searches (controller, child initialisation), disjoint from ``seeds``.
        trials: children per search.
        batch: proposals per controller update.
        bernoulli_grid: rates of the plain-dropout grid.
        controller: REINFORCE settings (``lr``, ``entropy_weight``, ``baseline_decay``).
        early_stopping: ``none`` or ``asha``.
        device: child device (``cpu``, ``auto``).
        gpus_per_trial: GPUs of one child.
        concurrency: children trained at once.
    """

    name: str
    datasets: dict[str, dict[str, Any]]
    widths: tuple[int, ...] = (16, 32, 64)
    wider: tuple[int, ...] = (32, 64, 128)
    epochs: int = 15
    batch_size: int = 32
    seeds: tuple[int, ...] = (0, 1, 2)
    search_seeds: tuple[int, ...] = (100, 101, 102)
    trials: int = 32
    batch: int = 4
    bernoulli_grid: tuple[float, ...] = (0.1, 0.2, 0.3, 0.5)
    controller: dict[str, float] = field(
        default_factory=lambda: {"lr": 0.01, "entropy_weight": 0.0001, "baseline_decay": 0.5}
    )
    early_stopping: str = "none"
    device: str = "cpu"
    gpus_per_trial: float = 0.0
    concurrency: int = 2

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return asdict(self)


_DEFAULT = StudySize(
    name="default",
    datasets={
        "digits": {"size": 16, "n_train": 300, "val_fraction": 0.4, "data_seed": 0},
        "rotated": {"size": 16, "train_domains": [0, 15, 30, 45], "test_domains": [60, 75], "data_seed": 0},
    },
)

SIZES: dict[str, StudySize] = {
    "default": _DEFAULT,
    "tiny": replace(
        _DEFAULT,
        name="tiny",
        datasets={
            "digits": {"size": 8, "n_train": 100, "val_fraction": 0.4, "data_seed": 0},
            "rotated": {"size": 8, "n_train": 100, "train_domains": [0, 15], "test_domains": [60], "data_seed": 0},
        },
        widths=(4, 8),
        wider=(8, 8),
        epochs=2,
        seeds=(0, 1),
        search_seeds=(100, 101),
        trials=4,
        batch=2,
        bernoulli_grid=(0.1, 0.3),
    ),
    "full": replace(
        _DEFAULT,
        name="full",
        widths=(32, 64),
        wider=(64, 128),
        epochs=30,
        trials=64,
        batch=8,
        device="auto",
        gpus_per_trial=0.25,
        concurrency=4,
    ),
}


def sites_of(kinds: tuple[str, ...], blocks: int = 3) -> list[str]:
    """The site names of a ``blocks``-block convnet, of the given kinds."""
    names = [f"features.drop{i}" for i in range(blocks + 1, 4)]
    return [name for name, kind in _SITES if kind in kinds and name not in names]


def bernoulli_pattern(rate: float, blocks: int = 3) -> dict[str, Any]:
    """Plain dropout at ``rate`` on every site."""
    return {
        "variant": "bernoulli",
        "sites": [{"site": s, "rate": rate} for s in sites_of(("conv", "features"), blocks)],
    }


def baseline_patterns(size: StudySize) -> dict[str, tuple[dict[str, Any], int]]:
    """Baseline name -> (pattern, pre-training epochs), each method at its paper's defaults or common settings.

    Every child trains ``size.epochs`` epochs in all; very-large dropout splits them into pre-training without
    dropout and fine-tuning at rate 0.9 (a third of the epochs, at least one).
    """
    blocks = len(size.widths)
    conv = sites_of(("conv",), blocks)
    finetune = max(1, size.epochs // 3)
    out: dict[str, tuple[dict[str, Any], int]] = {"none": ({"variant": "none"}, 0)}
    for rate in size.bernoulli_grid:
        out[f"bernoulli-{rate:g}"] = (bernoulli_pattern(rate, blocks), 0)
    out["spatial-0.1"] = ({"variant": "spatial", "sites": [{"site": s, "rate": 0.1} for s in conv]}, 0)
    dropblock_sites = [{"site": s, "rate": 0.1, "shape": {"block_size": 3}} for s in conv]
    out["dropblock-0.1-b3"] = ({"variant": "dropblock", "sites": dropblock_sites}, 0)
    out["gsnr"] = ({"variant": "gsnr", "params": {"p": 0.1, "meta": False, "estimator": "microbatch"}}, 0)
    ydrop_sites = [{"site": s, "rate": 0.1} for s in sites_of(("conv", "features"), blocks)]
    ydrop_params = {"scale": 1.0, "refresh_every": 10, "steps": 5}
    out["ydrop"] = ({"variant": "ydrop", "sites": ydrop_sites, "params": ydrop_params}, 0)
    gradaug = {"min_width": 0.8, "n_subnets": 3, "resolutions": [1.0, 0.875, 0.75]}
    out["gradaug"] = ({"variant": "gradaug", "params": gradaug}, 0)
    largedrop = {"variant": "largedrop", "sites": [{"site": "head.drop", "rate": 0.9}], "params": {"freeze_bn": True}}
    out["largedrop-ft"] = (largedrop, size.epochs - finetune)
    shape = {"size": 3, "stride": 2, "repeat": 2, "rotate": 0, "shear_x": 0.0, "shear_y": 0.0, "share_c": True}
    hand = [{"site": s, "rate": 0.1, "shape": {**shape, "residual": False}} for s in conv]
    out["autodropout-hand"] = ({"variant": "autodropout", "sites": hand}, 0)
    return out
