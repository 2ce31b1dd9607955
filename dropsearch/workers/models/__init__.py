"""The model registry and the built-in models (``convnet``, ``resnet``, ``mlp``, ``transformer``, ``cnn1d``)."""

from dropsearch.workers.models.cnn1d import CNN1d, build_cnn1d
from dropsearch.workers.models.convnet import ConvNet, build_convnet
from dropsearch.workers.models.mlp import MLP, build_mlp
from dropsearch.workers.models.registry import (
    ENTRY_POINT_GROUP,
    INPUT_KINDS,
    ModelInfo,
    build_model,
    dropout_sites,
    model_info,
    model_names,
    register_model,
)
from dropsearch.workers.models.resnet import ResNet, build_resnet
from dropsearch.workers.models.transformer import Transformer, TransformerConfig, build_transformer

__all__ = [
    "ENTRY_POINT_GROUP",
    "INPUT_KINDS",
    "ModelInfo",
    "build_model",
    "dropout_sites",
    "model_info",
    "model_names",
    "register_model",
    "CNN1d",
    "ConvNet",
    "MLP",
    "ResNet",
    "Transformer",
    "TransformerConfig",
    "build_cnn1d",
    "build_convnet",
    "build_mlp",
    "build_resnet",
    "build_transformer",
]
