"""What one child training needs to know: :class:`ChildConfig`, built from a search spec and a pattern."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["ChildConfig"]


@dataclass(frozen=True)
class ChildConfig:
    """Everything a worker needs to train one child network; plain data, so it crosses Ray cheaply.

    Args:
        model: registry name of the child model.
        model_params: the model's parameters.
        dataset: registry name of the dataset.
        dataset_params: the dataset's parameters (domains, size, path...).
        pattern: the pattern document (``Pattern.to_dict()``) to install with ``dropsearch.apply``.
        epochs: epochs of the child, pre-training epochs included (see ``pretrain_epochs``).
        batch_size: examples per step.
        lr: learning rate.
        optimizer: ``"adam"`` or ``"sgd"`` (momentum 0.9).
        weight_decay: L2 weight decay.
        seed: seeds model initialisation and batch order.
        seeds: children trained in lockstep with seeds ``seed, seed + 1, ...``, same pattern and data; each
            epoch reports the mean of every metric and the per-seed values (``<metric>_seeds``). See
            :class:`~dropsearch.workers.multi_seed.MultiSeedTraining`.
        pretrain_epochs: the first epochs train without the pattern (very-large-dropout fine-tuning needs a
            pre-trained network; used when ``checkpoint_path`` is not given). They count inside ``epochs``, at
            least one epoch of which trains under the pattern, and are reported like the others.
        checkpoint_path: a ``state_dict`` file to start from instead of pre-training.
        objective: the metric the reward is read from.
        device: ``"auto"`` (GPU when Ray allocated one), ``"cpu"`` or ``"cuda"``.
        bf16: autocast to bfloat16 on GPU.
        channels_last: channels-last memory format for convnets on GPU.
        compile: wrap the model in ``torch.compile``.
        allowed_roots: directories dataset paths may name.
        inject_failure_at_epoch: fault injection for tests and drills: raise at this epoch (1-based)...
        inject_failure_attempts: ...on attempts up to this one (default: every attempt).
        attempt: which attempt of the trial this is (set by the search loop; 1 = first).
    """

    model: str
    dataset: str
    pattern: dict[str, Any]
    model_params: dict[str, Any] = field(default_factory=dict)
    dataset_params: dict[str, Any] = field(default_factory=dict)
    epochs: int = 5
    batch_size: int = 64
    lr: float = 1e-3
    optimizer: str = "adam"
    weight_decay: float = 0.0
    seed: int = 0
    seeds: int = 1
    pretrain_epochs: int = 0
    checkpoint_path: str | None = None
    objective: str = "val_accuracy"
    device: str = "auto"
    bf16: bool = True
    channels_last: bool = True
    compile: bool = False
    allowed_roots: tuple[str, ...] = ()
    inject_failure_at_epoch: int | None = None
    inject_failure_attempts: int = 1_000_000
    attempt: int = 1

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (stored beside the trial)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChildConfig:
        """Inverse of :meth:`to_dict`."""
        data = dict(data)
        data["allowed_roots"] = tuple(data.get("allowed_roots", ()))
        return cls(**data)

    @property
    def dataset_key(self) -> str:
        """A key that identifies the loaded dataset, for per-worker caching."""
        import json

        return json.dumps([self.dataset, self.dataset_params, self.seed, list(self.allowed_roots)], sort_keys=True)
