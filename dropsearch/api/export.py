"""A search's trials as one CSV table: one row per trial, per-site rates and per-epoch metrics flattened.

Columns, in order: ``index, id, status, attempt, kind, arm, seed, variant, tokens, rate.<site>...``,
``param.<name>...``, ``reward, epochs, epoch_<n>.<metric>...``, ``created_at, started_at, finished_at, wall_s, node,
error``.

- ``kind`` is ``search`` (a trial the controller proposed) or ``validation`` (a re-training of the validation stage,
  index 1000000 and up); ``arm`` and ``seed`` are a validation run's arm (e.g. ``search-1``, ``none``) and training
  seed (empty for a search trial);
- ``tokens`` is the controller's decision list as JSON;
- ``rate.<site>`` is the pattern's rate at each dropout site (empty where a trial's pattern lacks the site);
- ``epoch_<n>.<metric>`` is the value reported at epoch ``n`` (1-based, as stored), e.g. ``epoch_3.val_accuracy``;
- ``reward`` is the raw objective metric as stored (the search's ``objective.mode`` says which way is better).

Columns are the union over all trials, sorted (sites and params by name, epochs by number, then metric name), so
two exports of the same trials are byte-identical.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

from dropsearch.store.records import TrialRecord

__all__ = ["CSV_MEDIA_TYPE", "file_stem", "trial_rows", "trials_csv"]

CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
_HEAD = ("index", "id", "status", "attempt", "kind", "arm", "seed", "variant", "tokens")
_TAIL = ("created_at", "started_at", "finished_at", "wall_s", "node", "error")
_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9._-]+")


def file_stem(name: str | None, fallback: str) -> str:
    """A download file name stem made of ``[A-Za-z0-9._-]`` only (``fallback`` when nothing is left)."""
    return _UNSAFE_FILENAME.sub("-", name or fallback).strip("-.") or fallback


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)  # shortest round-trip form: float(cell) == value
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def _sites(trial: TrialRecord) -> dict[str, Any]:
    sites = (trial.pattern or {}).get("sites") or []
    return {str(s.get("site")): s.get("rate") for s in sites if isinstance(s, dict) and "site" in s}


def _epochs(trial: TrialRecord) -> dict[tuple[int, str], Any]:
    out: dict[tuple[int, str], Any] = {}
    for entry in trial.metrics or []:
        if not isinstance(entry, dict) or "epoch" not in entry:
            continue
        epoch = int(entry["epoch"])
        for name, value in entry.items():
            if name != "epoch":
                out[(epoch, str(name))] = value
    return out


def trial_rows(trials: Sequence[TrialRecord]) -> tuple[list[str], list[list[Any]]]:
    """The header and one row of cells per trial (cells already formatted for CSV)."""
    sites = sorted({site for t in trials for site in _sites(t)})
    params = sorted({str(p) for t in trials for p in ((t.pattern or {}).get("params") or {})})
    epochs = sorted({key for t in trials for key in _epochs(t)})
    header = [
        *_HEAD,
        *(f"rate.{s}" for s in sites),
        *(f"param.{p}" for p in params),
        "reward",
        "epochs",
        *(f"epoch_{e}.{m}" for e, m in epochs),
        *_TAIL,
    ]
    rows = []
    for t in trials:
        pattern, rates, reported = t.pattern or {}, _sites(t), _epochs(t)
        values = pattern.get("params") or {}
        row = [t.index, t.id, t.status, t.attempt, t.kind, t.arm, t.seed, pattern.get("variant"), list(t.tokens)]
        row += [rates.get(s) for s in sites]
        row += [values.get(p) for p in params]
        row += [t.reward, len({e for e, _ in reported})]
        row += [reported.get(key) for key in epochs]
        row += [t.created_at, t.started_at, t.finished_at, t.wall_s, t.node, t.error]
        rows.append([_cell(v) for v in row])
    return header, rows


def trials_csv(trials: Iterable[TrialRecord]) -> str:
    """The CSV text (RFC 4180, CRLF line ends) of ``trials`` in the order given."""
    header, rows = trial_rows(list(trials))
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()
