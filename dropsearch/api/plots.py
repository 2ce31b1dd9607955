"""PNG pictures: reward per trial with its best-so-far curve (and the validation arms), and a trial's dropout masks.

matplotlib is imported lazily, through its object-oriented API and the Agg canvas (no pyplot, no global backend,
safe in worker threads). :func:`mask_png` imports torch lazily to sample the real masks of the regularizers: each
variant's ``mask_preview`` in the variant registry (read lazily too).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

from dropsearch.store.records import TrialRecord

__all__ = ["MASK_SIDE", "MAX_MASK_SITES", "best_so_far", "mask_png", "reward_plot_png", "validation_bars"]

MASK_SIDE = 32  #: side of the feature map on which conv masks are drawn
MAX_MASK_SITES = 8  #: at most this many sites are drawn


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def best_so_far(rewards: Sequence[float], *, mode: str = "max") -> list[float]:
    """Running best of ``rewards`` (running max for ``mode="max"``, running min for ``"min"``)."""
    out: list[float] = []
    for reward in rewards:
        if not out:
            out.append(reward)
        else:
            out.append(max(out[-1], reward) if mode == "max" else min(out[-1], reward))
    return out


def validation_bars(validation: Mapping[str, Any] | None) -> list[tuple[str, float, float, float, str]]:
    """The validation arms with a mean, as ``(name, mean, low, high, role)`` for error bars (mean ± sd).

    ``role`` is ``"chosen"``, ``"baseline"`` or ``"search"``; an arm with one seed (no sd) gets ``low == high``.
    Arms without a mean yet are left out. Order: the report's.
    """
    out = []
    for arm in (validation or {}).get("arms") or []:
        mean = arm.get("mean")
        if mean is None:
            continue
        sd = arm.get("sd") or 0.0
        role = "chosen" if arm.get("name") == validation.get("chosen") else str(arm.get("origin", "search"))
        out.append((str(arm.get("name")), float(mean), float(mean) - sd, float(mean) + sd, role))
    return out


def _draw_validation(axes: Any, bars: list[tuple[str, float, float, float, str]]) -> None:
    """Validation arms side by side: mean (marker) and ± sd (error bar), the chosen arm as a star."""
    colors = {"chosen": "tab:red", "baseline": "tab:gray", "search": "tab:green"}
    for x, (_name, mean, low, high, role) in enumerate(bars):
        axes.errorbar(
            [x],
            [mean],
            yerr=[[mean - low], [high - mean]],
            fmt="*" if role == "chosen" else ("s" if role == "baseline" else "o"),
            markersize=10 if role == "chosen" else 6,
            color=colors.get(role, "tab:green"),
            capsize=4,
        )
    axes.set_xticks(range(len(bars)), [b[0] for b in bars], rotation=30, ha="right", fontsize=7)
    axes.set_xlim(-0.6, len(bars) - 0.4)
    axes.set_title("validation: mean ± sd", fontsize=9)
    axes.grid(True, axis="y", alpha=0.3)


def reward_plot_png(
    trials: Sequence[TrialRecord],
    *,
    mode: str = "max",
    title: str = "",
    metric: str = "",
    validation: Mapping[str, Any] | None = None,
) -> bytes:
    """Reward of each rewarded search trial by index (dots) and the best reward so far (step line), as PNG bytes.

    With a ``validation`` report (:mod:`dropsearch.search.validation_report`) that has arm means, a second panel
    beside it (same reward axis) shows each arm's mean over its seeds with a ± sd error bar (see
    :func:`validation_bars`); validation runs themselves are never drawn as trials.
    """
    rewarded = sorted((t for t in trials if t.reward is not None and t.kind == "search"), key=lambda t: t.index)
    bars = validation_bars(validation)
    figure = _figure(7.0, 4.0)
    if bars:
        grid = figure.add_gridspec(1, 2, width_ratios=[3, max(1, min(len(bars), 4))])
        axes = figure.add_subplot(grid[0, 0])
        _draw_validation(figure.add_subplot(grid[0, 1], sharey=axes), bars)
    else:
        axes = figure.add_subplot(1, 1, 1)
    if rewarded:
        xs = [t.index for t in rewarded]
        ys = [float(t.reward) for t in rewarded]
        for wanted, marker, label in (("succeeded", "o", "trial"), ("stopped", "x", "early-stopped trial")):
            group = [t for t in rewarded if (t.status == "stopped") == (wanted == "stopped")]
            if group:
                axes.scatter([t.index for t in group], [t.reward for t in group], s=18, marker=marker, label=label)
        axes.step(xs, best_so_far(ys, mode=mode), where="post", color="black", label="best so far")
        axes.legend(loc="best", fontsize=8)
    else:
        axes.text(0.5, 0.5, "no finished trials yet", ha="center", va="center", transform=axes.transAxes)
    axes.set_xlabel("trial")
    axes.set_ylabel(f"reward ({metric})" if metric else "reward")
    axes.set_title(title or "reward per trial")
    axes.grid(True, alpha=0.3)
    figure.tight_layout()
    return _png(figure)


def _mask_preview(variant: str) -> Any:
    """The variant's ``mask_preview`` from the registry, or ``None`` (no preview, or a variant not installed here)."""
    from dropsearch.regularizers.registry import get_variant

    try:
        return get_variant(variant).mask_preview
    except ValueError:
        return None


def _site_mask(variant: str, site: Mapping[str, Any], seed: int) -> tuple[Any, str]:
    """A 2-D {0, 1} keep mask (numpy) of one site and a caption, drawn by the variant's ``mask_preview``."""
    import torch

    preview = _mask_preview(variant)
    if preview is None:
        raise ValueError(f"variant {variant!r} has no mask preview")
    mask, caption = preview(site, MASK_SIDE, torch.Generator().manual_seed(seed))
    return mask.float().numpy(), caption


def mask_png(pattern: Mapping[str, Any], *, seed: int = 0, title: str = "") -> bytes:
    """A picture of a pattern's dropout, as PNG bytes.

    For a variant with a ``mask_preview`` in the registry (``autodropout``, ``spatial``, ``dropblock``,
    ``bernoulli``) one sampled keep mask per site (white = kept, black = dropped; at most :data:`MAX_MASK_SITES`),
    drawn with the regularizers' own mask functions and a generator seeded with ``seed``. For the other variants, a
    bar chart of the per-site rates, or of the numeric variant parameters when there are no sites.
    """
    variant = str(pattern.get("variant", "none"))
    sites = [s for s in pattern.get("sites") or [] if isinstance(s, Mapping)]
    params = dict(pattern.get("params") or {})
    heading = title or f"variant: {variant}"
    if sites and _mask_preview(variant) is not None:
        shown = sites[:MAX_MASK_SITES]
        figure = _figure(2.2 * len(shown) + 0.4, 2.8)
        for number, site in enumerate(shown):
            axes = figure.add_subplot(1, len(shown), number + 1)
            mask, caption = _site_mask(variant, site, seed + number)
            axes.imshow(mask, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
            axes.set_title(f"{site.get('site')}\nrate={float(site.get('rate', 0.0)):.2f}", fontsize=8)
            axes.set_xlabel(caption, fontsize=7)
            axes.set_xticks([])
            axes.set_yticks([])
        figure.suptitle(heading, fontsize=9)
        figure.tight_layout()
        return _png(figure)
    figure = _figure(7.0, 3.6)
    axes = figure.add_subplot(1, 1, 1)
    if sites:
        names = [str(s.get("site")) for s in sites]
        axes.bar(range(len(sites)), [float(s.get("rate", 0.0)) for s in sites])
        axes.set_xticks(range(len(sites)), names, rotation=30, ha="right", fontsize=7)
        axes.set_ylabel("rate")
    else:
        numeric = {k: float(v) for k, v in params.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if numeric:
            axes.bar(range(len(numeric)), list(numeric.values()))
            axes.set_xticks(range(len(numeric)), list(numeric), fontsize=8)
            axes.set_ylabel("value")
        else:
            axes.text(0.5, 0.5, "no per-site dropout", ha="center", va="center", transform=axes.transAxes)
    other = ", ".join(f"{k}={v}" for k, v in params.items())
    axes.set_title(heading + (f" ({other})" if other else ""), fontsize=9)
    figure.tight_layout()
    return _png(figure)
