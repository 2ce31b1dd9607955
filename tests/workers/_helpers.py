"""Shared pieces of the dataset tests: no network, and examples compared as multisets."""

from __future__ import annotations

import socket
from collections import Counter

import pytest
import torch


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a connection fails: no dataset may be downloaded (MNIST-1D is generated, never fetched).

    Autouse in each test module that imports it by name.
    """

    def refuse(*args, **kwargs):
        raise AssertionError("a dataset loader tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def rows(x: torch.Tensor) -> Counter:
    """The multiset of examples of ``x`` (exact bytes)."""
    flat = x.reshape(len(x), -1).contiguous().numpy()
    return Counter(r.tobytes() for r in flat)
