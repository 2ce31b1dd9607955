"""Test-only plugins installed the way an outside package installs one: a module plus a ``*.dist-info`` directory
whose ``entry_points.txt`` registers it, in a directory put on ``sys.path`` (and ``PYTHONPATH`` for Ray workers).

Used by :mod:`tests.regularizers.variant_plugin` (a variant) and :mod:`tests.reliability.engine_plugin` (a model).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def write_package(root: Path, module: str, source: str, group: str, entry: str) -> Path:
    """Write ``<module>.py`` (``source``) and ``<module>-0.1.dist-info`` registering ``entry`` (``name = target``)
    in the entry-point ``group`` under ``root`` (a ``sys.path`` entry); return ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{module}.py").write_text(source)
    info = root / f"{module}-0.1.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{group}]\n{entry}\n")
    return root


@contextmanager
def on_path_for_ray(root: Path) -> Iterator[Path]:
    """``root`` on ``sys.path`` and ``PYTHONPATH`` while inside, so that a Ray started inside (and its workers) sees
    it; Ray is shut down on entry (one started earlier would not see the new ``PYTHONPATH``) and on exit, and both
    paths are restored on exit."""
    import ray

    ray.shutdown()
    saved_env = os.environ.get("PYTHONPATH")
    sys.path.insert(0, str(root))
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), saved_env) if p)
    try:
        yield root
    finally:
        ray.shutdown()
        sys.path.remove(str(root))
        if saved_env is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved_env
