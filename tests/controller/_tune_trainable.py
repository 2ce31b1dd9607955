"""The trainable of test_tune, in its own module so Ray workers import only this (not torch)."""

import os
import signal
import time

from ray import tune


def trainable(config):
    """Synthetic reward from the tokens. Proposal 5 interrupts the driver (SIGUSR1) while the flag file exists."""
    if config["proposal_index"] == 5 and os.path.exists(config["flag"]):
        os.remove(config["flag"])
        os.kill(config["driver_pid"], signal.SIGUSR1)  # what Ctrl+C does: Tune saves its state and stops
        time.sleep(5)  # still running when the driver stops
    tune.report({"reward": sum(config["tokens"]) / len(config["tokens"])})
