"""Controller states stored by the runner: they round-trip through the database blob, and a blob holding
anything but tensors and plain containers is refused (it comes from the database; it must never run code)."""

from __future__ import annotations

import io
import pickle
import random
from pathlib import Path

import pytest
import torch

from dropsearch.controller import RandomController, ReinforceController
from dropsearch.runner.execution import decode_state, encode_state
from dropsearch.search.space import Decision, SearchSpace

SPACE = SearchSpace(tuple(Decision(f"d{i}", tuple(range(4))) for i in range(6)))


def _trained(controller):
    rng = random.Random(0)
    for _ in range(3):
        batch = controller.sample(4)
        controller.update(batch, [rng.random() for _ in batch])
    return controller


@pytest.mark.parametrize("make", [lambda: ReinforceController(SPACE, seed=3), lambda: RandomController(SPACE, seed=3)])
def test_controller_states_round_trip_through_the_stored_blob(make) -> None:
    straight, resumed = _trained(make()), make()
    resumed.load_state_dict(decode_state(encode_state(straight.state_dict())))  # RNG and optimizer state included
    a, b = straight.sample(6), resumed.sample(6)
    assert [p.tokens for p in a] == [p.tokens for p in b]
    assert straight.update(a, [0.5] * 6) == resumed.update(b, [0.5] * 6)


class _Exploit:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.write_text, (self.path, "owned"))


def test_decode_state_unpickles_database_content_with_weights_only_false(tmp_path: Path) -> None:
    marker = tmp_path / "owned"
    buffer = io.BytesIO()
    torch.save({"policy": torch.zeros(2), "payload": _Exploit(marker)}, buffer)
    with pytest.raises(pickle.UnpicklingError):
        decode_state(buffer.getvalue())
    assert not marker.exists()  # the blob's code never ran
