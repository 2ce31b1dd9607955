"""Hooks run when a trial's worker process ends.

They run at interpreter exit, and from the hang watchdog before it ends the process with ``os._exit`` (which skips
``atexit``). A DDP trial registers the removal of its trainer's placement group here, so a worker that dies takes
no resources with it.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

__all__ = ["on_exit", "run_exit_hooks"]

_EXIT_HOOKS: list[Any] = []


def run_exit_hooks(timeout_s: float = 10.0) -> None:
    """Run the exit hooks, each in a thread given at most ``timeout_s``; an error is printed, not raised."""

    def call(hook: Any) -> None:
        try:
            hook()
        except Exception as exc:
            print(f"exit hook {getattr(hook, '__name__', hook)} failed: {exc!r}", file=sys.stderr, flush=True)

    for hook in list(_EXIT_HOOKS):
        thread = threading.Thread(target=call, args=(hook,), daemon=True)
        thread.start()
        thread.join(timeout_s)


def on_exit(hook: Any) -> None:
    """Run ``hook`` when this process ends (once, however often it is asked)."""
    if hook not in _EXIT_HOOKS:
        if not _EXIT_HOOKS:
            import atexit

            atexit.register(run_exit_hooks)
        _EXIT_HOOKS.append(hook)
