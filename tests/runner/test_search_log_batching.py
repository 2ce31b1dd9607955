"""The search log holds epoch lines (at most a second, then one actor call) and sends other lines at once."""

from __future__ import annotations

import time

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


@pytest.fixture(autouse=True)
def short_hold(monkeypatch):
    monkeypatch.setattr(dashboard, "FLUSH_EVERY_S", 0.3)


def _wait_for(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.01)


def test_epoch_lines_are_held_then_sent_together_in_one_call_within_the_hold_time():
    actor = _Actor()
    handle = _Handle(actor, "val_accuracy")
    for epoch in range(1, 5):
        handle.send(EpochReported(3, {"epoch": epoch, "val_accuracy": 0.5}))
    assert actor.calls == []
    _wait_for(lambda: actor.calls)
    assert actor.calls == [[f"trial 3 epoch {e}: val_accuracy=0.5" for e in range(1, 5)]]
    handle.send(EpochReported(3, {"epoch": 5, "val_accuracy": 0.75}))  # a later epoch: its own timer
    _wait_for(lambda: len(actor.calls) == 2)
    assert actor.calls[1] == ["trial 3 epoch 5: val_accuracy=0.75"]


def test_any_other_line_goes_at_once_after_the_epoch_lines_held_before_it():
    actor = _Actor()
    handle = _Handle(actor, "val_accuracy")
    handle.send(EpochReported(0, {"epoch": 1, "val_accuracy": 0.5}))
    handle.send(TrialFinished(0, "succeeded", 0.5, [], 1.0))
    assert actor.calls == [["trial 0 epoch 1: val_accuracy=0.5", "trial 0 succeeded: val_accuracy=0.5"]]
    time.sleep(0.5)  # the epoch's timer finds nothing left to send
    assert len(actor.calls) == 1


def test_close_sends_the_lines_still_held_then_ends_the_actor(monkeypatch):
    import ray

    actor = _Actor()
    killed: list[tuple[object, int]] = []
    monkeypatch.setattr(ray, "kill", lambda handle, no_restart: killed.append((handle, len(actor.calls))))
    handle = _Handle(actor, "val_accuracy")
    handle.send(EpochReported(1, {"epoch": 7, "val_accuracy": 0.25}))
    handle.close()
    assert actor.calls == [["trial 1 epoch 7: val_accuracy=0.25"]]
    assert killed == [(actor, 1)]  # ended after its last lines were sent
    time.sleep(0.5)
    assert len(actor.calls) == 1  # the timer was cancelled
    assert not ray.is_initialized()
