"""A test-only model shipped the way an outside package ships one: a module plus a ``*.dist-info`` directory whose
``entry_points.txt`` registers it in the group ``dropsearch.models``.

``faulty-mlp-test`` is the built-in MLP with two faults a test switches on through its params:

- ``hang_epoch`` (> 0): the training forward pass of that epoch (counted by the model's switches to eval mode,
  one per epoch) blocks forever, in ONE trial only: the first trial to get there claims the file ``marker`` (its
  Tune trial id), and only that trial hangs, on its first ``hang_attempts`` attempts (each hang appends
  ``<trial id> <unix time>`` to ``<marker>.hangs``).
- ``slow_first_s`` (> 0): the first training forward pass of every trial appends ``<trial id> <unix time>`` to
  ``<marker>.started`` and then sleeps that long (a slow first epoch).

:func:`write_plugin` writes it under a directory that the caller puts on ``sys.path`` (and ``PYTHONPATH`` for Ray
workers) before Ray starts.
"""

from __future__ import annotations

from pathlib import Path

from tests._plugins import write_package

NAME = "faulty-mlp-test"

SOURCE = '''
"""faulty-mlp-test: the built-in MLP with switchable hangs and slow first epochs (a dropsearch model plugin for
tests)."""

import os
import threading
import time

from dropsearch.workers.models.mlp import MLP, build_mlp


def _trial_id():
    try:
        from ray import tune

        return str(tune.get_context().get_trial_id())
    except Exception:  # outside a Tune trial
        return f"pid-{os.getpid()}"


def _append(path, line):
    with open(path, "a") as f:
        f.write(line + "\\n")


class FaultyMLP(MLP):
    def __init__(self, in_features, num_classes, hidden, hang_epoch, hang_attempts, slow_first_s, marker):
        super().__init__(in_features, num_classes, hidden)
        self.hang_epoch, self.hang_attempts = hang_epoch, hang_attempts
        self.slow_first_s, self.marker = slow_first_s, marker
        self.evals, self.forwards = 0, 0

    def train(self, mode=True):
        if not mode and self.training:
            self.evals += 1  # one evaluation per finished epoch
        return super().train(mode)

    def _claims_hang(self):
        trial = _trial_id()
        try:
            fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            os.write(fd, trial.encode())
            os.close(fd)
        except FileExistsError:
            with open(self.marker) as f:
                if f.read() != trial:
                    return False
        hangs = self.marker + ".hangs"
        done = len(open(hangs).read().splitlines()) if os.path.exists(hangs) else 0
        if done >= self.hang_attempts:
            return False
        _append(hangs, f"{trial} {time.time()}")
        return True

    def forward(self, x):
        if self.training:
            self.forwards += 1
            if self.forwards == 1 and self.slow_first_s > 0:
                _append(self.marker + ".started", f"{_trial_id()} {time.time()}")
                time.sleep(self.slow_first_s)
            if self.hang_epoch > 0 and self.evals + 1 >= self.hang_epoch and self._claims_hang():
                threading.Event().wait()  # a stuck collective, a deadlocked loader: never returns
        return super().forward(x)


def build_faulty_mlp(
    *, in_shape, num_classes, hidden=(16,), hang_epoch=0, hang_attempts=1000, slow_first_s=0.0, marker=""
):
    """Test-only MLP that can hang from an epoch on, in one trial, or train a slow first epoch."""
    base = build_mlp(in_shape=in_shape, num_classes=num_classes, hidden=hidden)
    in_features = base.layers.fc1.in_features
    return FaultyMLP(
        in_features, num_classes, list(hidden), int(hang_epoch), int(hang_attempts), float(slow_first_s), str(marker)
    )


build_faulty_mlp.input_kinds = ("image", "signal")
'''


def write_plugin(root: Path, *, module: str = "dropsearch_faulty_mlp_test", name: str = NAME) -> Path:
    """Write the plugin module and its dist-info under ``root`` (a ``sys.path`` entry) and return ``root``."""
    return write_package(root, module, SOURCE, "dropsearch.models", f"{name} = {module}:build_faulty_mlp")
