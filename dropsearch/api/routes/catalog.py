"""``/v1/catalog``: the models, datasets and variants a job spec may name, and the decisions each variant adds.

Built without torch: names come from :mod:`dropsearch.search.catalog` (plugins are listed, never loaded) and the
decisions from the constants of :mod:`dropsearch.search.builtin`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from dropsearch.api.deps import CurrentKey
from dropsearch.api.schemas import CatalogEntry, CatalogPublic, CatalogVariant, ErrorPublic
from dropsearch.regularizers.pattern import VARIANTS
from dropsearch.search.builtin import (
    CONSTANT_PARAMS,
    CONV_SHAPE_CHOICES,
    DEFAULT_RATES,
    DEFAULT_VARIANTS,
    RATE_KINDS,
    SEQUENCE_SHAPE_CHOICES,
    VARIANT_PARAMS,
)
from dropsearch.search.catalog import DATASETS, MODELS, dataset_names, model_names

__all__ = ["DATASET_DESCRIPTIONS", "MODEL_DESCRIPTIONS", "VARIANT_DESCRIPTIONS", "build_catalog", "router"]

router = APIRouter(tags=["catalog"])

MODEL_DESCRIPTIONS: dict[str, str] = {
    "convnet": "small ConvNet for 8x8 to 32x32 images: conv-BN-ReLU blocks, global average pooling, linear head",
    "resnet": "CIFAR-style ResNet-18 / Wide ResNet WRN-d-k, width-sliceable for GradAug",
    "mlp": "multilayer perceptron: flatten, Linear-ReLU hidden layers, linear classifier",
    "transformer": "small nanoGPT-style Transformer for character-level language modelling or classification",
    "cnn1d": "small 1-D CNN for signals such as MNIST-1D: Conv1d-ReLU blocks (sequence sites), flatten, linear head",
}
DATASET_DESCRIPTIONS: dict[str, str] = {
    "digits": "scikit-learn's bundled 8x8 handwritten digits (1797 images, 10 classes)",
    "rotated-digits": "digits rotated by 0-75 degrees, one domain per angle (params: train_domains, test_domains)",
    "synthetic": "deterministic Gaussian-blob images; fast, for tests and smoke runs",
    "image-folder": "images from a local tree path/<class>/*.png|jpg (param path, inside the server's dataset roots)",
    "cifar10": "CIFAR-10 from the python batches in a local directory (param path; never downloaded)",
    "char-corpus": "character-level corpus from a local UTF-8 text file (param path; next-character targets)",
    "mnist1d": "MNIST-1D signals (40 points, 10 classes) generated offline; 3200/800 validation split, 1000 test",
}
VARIANT_DESCRIPTIONS: dict[str, str] = {
    "none": "no dropout (the baseline)",
    "bernoulli": "standard elementwise dropout (Srivastava et al. 2014)",
    "spatial": "SpatialDropout: drops whole channels (Tompson et al. 2015, arXiv 1411.4280)",
    "dropblock": "DropBlock: drops contiguous squares of a feature map (arXiv 1810.12890)",
    "autodropout": "AutoDropout: searched structured dropout patterns (arXiv 2101.01761)",
    "gsnr": "GSNR dropout: drops updates of parameters with a low gradient signal-to-noise ratio",
    "ydrop": "Y-Drop: conductance-biased dropout keep probabilities",
    "gradaug": "GradAug: regularizes with sub-network passes of reduced width and resolution (arXiv 2006.07989)",
    "largedrop": "very large dropout on the penultimate features, fine-tuning with frozen BatchNorm",
}


def _lists(table: dict[str, tuple[Any, ...]]) -> dict[str, list[Any]]:
    return {name: [list(c) if isinstance(c, tuple) else c for c in choices] for name, choices in table.items()}


def _variant(name: str) -> CatalogVariant:
    kinds = list(RATE_KINDS.get(name, ("features",) if name == "largedrop" else ()))
    site_decisions: dict[str, dict[str, list[Any]]] = {}
    if name in RATE_KINDS:
        for kind in RATE_KINDS[name]:
            site_decisions.setdefault(kind, {})["rate"] = [float(r) for r in DEFAULT_RATES]
    if name == "autodropout":
        site_decisions["conv"] = {**site_decisions.get("conv", {}), **_lists(CONV_SHAPE_CHOICES)}
        site_decisions["sequence"] = {**site_decisions.get("sequence", {}), **_lists(SEQUENCE_SHAPE_CHOICES)}
    return CatalogVariant(
        name=name,
        description=VARIANT_DESCRIPTIONS.get(name, name),
        site_kinds=kinds,
        decisions={f"{name}/{param}": choices for param, choices in _lists(VARIANT_PARAMS.get(name, {})).items()},
        site_decisions=site_decisions,
        constants=dict(CONSTANT_PARAMS.get(name, {})),
    )


def build_catalog() -> CatalogPublic:
    """The catalog (built-in and installed plugin models and datasets, and every variant)."""
    plugin_model, plugin_dataset = "plugin model (dropsearch.models)", "plugin dataset (dropsearch.datasets)"
    models = [
        CatalogEntry(name=n, description=MODEL_DESCRIPTIONS.get(n, plugin_model), builtin=n in MODELS)
        for n in model_names()
    ]
    datasets = [
        CatalogEntry(name=n, description=DATASET_DESCRIPTIONS.get(n, plugin_dataset), builtin=n in DATASETS)
        for n in dataset_names()
    ]
    return CatalogPublic(
        models=models,
        datasets=datasets,
        variants=[_variant(v) for v in VARIANTS],
        default_variants=list(DEFAULT_VARIANTS),
        default_rates=[float(r) for r in DEFAULT_RATES],
    )


@router.get("/v1/catalog", response_model=CatalogPublic, responses={401: {"model": ErrorPublic}}, summary="Catalog")
def catalog(key: CurrentKey) -> CatalogPublic:
    """Models, datasets with descriptions, variants and the decisions each variant adds to a search space.

    Per-site rate choices are the defaults; a spec's ``space.rates`` replaces them.
    """
    return build_catalog()
