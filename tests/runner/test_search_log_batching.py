"""The driver's side of the search log batches epoch lines (one actor call a second) and sends the rest at once."""

from __future__ import annotations

import pytest

from dropsearch.runner import dashboard
from dropsearch.runner.dashboard import _Handle
from dropsearch.runner.events import EpochReported, TrialFinished


class _Method:
    def __init__(self, calls: list[list[str]]) -> None:
        self.calls = calls

    def remote(self, texts: list[str]) -> None:
        self.calls.append(list(texts))


class _Actor:
    """Records each ``lines.remote`` call (a stand-in for the Ray actor handle)."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.lines = _Method(self.calls)


@pytest.fixture
def clock(monkeypatch):
    now = {"t": 100.0}
    monkeypatch.setattr(dashboard.time, "monotonic", lambda: now["t"])
    return now


def test_epoch_lines_wait_until_a_second_has_passed_then_go_in_one_call(clock):
    actor = _Actor()
    handle = _Handle(actor, "val_accuracy")
    for epoch in range(1, 5):
        handle.send(EpochReported(3, {"epoch": epoch, "val_accuracy": 0.5}))
        clock["t"] += 0.2
    assert actor.calls == []  # 0.6 s since the first held line
    clock["t"] += 0.5
    handle.send(EpochReported(3, {"epoch": 5, "val_accuracy": 0.75}))
    assert actor.calls == [[f"trial 3 epoch {e}: val_accuracy={0.75 if e == 5 else 0.5}" for e in range(1, 6)]]


def test_any_other_line_goes_at_once_after_the_epoch_lines_held_before_it(clock):
    actor = _Actor()
    handle = _Handle(actor, "val_accuracy")
    handle.send(EpochReported(0, {"epoch": 1, "val_accuracy": 0.5}))
    handle.send(TrialFinished(0, "succeeded", 0.5, [], 1.0))
    assert actor.calls == [["trial 0 epoch 1: val_accuracy=0.5", "trial 0 succeeded: val_accuracy=0.5"]]


def test_close_sends_the_lines_still_held(clock):
    actor = _Actor()
    handle = _Handle(actor, "val_accuracy")
    handle.send(EpochReported(1, {"epoch": 7, "val_accuracy": 0.25}))
    handle.close()  # the stand-in is no Ray actor: waiting for it and killing it fail quietly
    assert actor.calls == [["trial 1 epoch 7: val_accuracy=0.25"]]
