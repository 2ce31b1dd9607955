"""``/v1/catalog``: the models, datasets and variants a job spec may name, and the decisions each variant adds.

Built without torch: model and dataset names come from :mod:`dropsearch.search.catalog` (plugins are listed, never
loaded); the variants, their descriptions and decisions from the variant registry, read through
:mod:`dropsearch.search.variant_catalog`, which is imported when the catalog is first asked for (this module imports
no regularizer code at import time, and installed variant plugins are loaded only by a catalog request).
"""

from __future__ import annotations

from fastapi import APIRouter

from dropsearch.api.deps import CurrentKey
from dropsearch.api.schemas import CatalogEntry, CatalogPublic, CatalogVariant, ErrorPublic
from dropsearch.search.catalog import DATASETS, MODELS, dataset_names, model_names

__all__ = ["DATASET_DESCRIPTIONS", "MODEL_DESCRIPTIONS", "build_catalog", "router"]

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


def build_catalog() -> CatalogPublic:
    """The catalog (built-in and installed plugin models and datasets, and every registered variant)."""
    from dropsearch.search.builtin import DEFAULT_RATES, DEFAULT_VARIANTS
    from dropsearch.search.variant_catalog import model_variants, variant_entries

    plugin_model, plugin_dataset = "plugin model (dropsearch.models)", "plugin dataset (dropsearch.datasets)"
    models = [
        CatalogEntry(
            name=n,
            description=MODEL_DESCRIPTIONS.get(n, plugin_model),
            builtin=n in MODELS,
            variants=model_variants(n),
        )
        for n in model_names()
    ]
    datasets = [
        CatalogEntry(name=n, description=DATASET_DESCRIPTIONS.get(n, plugin_dataset), builtin=n in DATASETS)
        for n in dataset_names()
    ]
    return CatalogPublic(
        models=models,
        datasets=datasets,
        variants=[CatalogVariant(**entry) for entry in variant_entries()],
        default_variants=list(DEFAULT_VARIANTS),
        default_rates=[float(r) for r in DEFAULT_RATES],
    )


@router.get("/v1/catalog", response_model=CatalogPublic, responses={401: {"model": ErrorPublic}}, summary="Catalog")
def catalog(key: CurrentKey) -> CatalogPublic:
    """Models, datasets with descriptions, variants and the decisions each variant adds to a search space.

    Per-site rate choices are the defaults; a spec's ``space.rates`` replaces them.
    """
    return build_catalog()
