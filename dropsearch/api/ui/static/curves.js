/* Learning curves (a metric per epoch, one line per trial) and rewards per variant (a strip plot), as SVG.
   Every line and dot has a <title> (the browser's tooltip) naming its trial; early-stopped trials are dashed and
   end in a cross, so they visibly end early. */
"use strict";

const DSCurves = (() => {
  const H = 300, M = { left: 64, right: 16, top: 16, bottom: 52 };
  /* Colours with at least 3:1 contrast on white, one per variant. */
  const PALETTE = ["#0b57d0", "#b3261e", "#1b5e20", "#7b1fa2", "#8a4b00", "#00695c", "#ad1457", "#37474f", "#5d4037"];

  const { svgEl, extent } = DSCharts;  /* charts.js, loaded before this file */

  /* One colour per variant, by sorted name: both charts colour a variant alike. */
  function colours(variants) {
    const out = new Map();
    for (const v of [...new Set(variants)].sort()) out.set(v, PALETTE[out.size % PALETTE.length]);
    return out;
  }

  function frame(svg, emptyText, hasData) {
    const W = Math.max(280, Math.round(svg.getBoundingClientRect().width) || 600);
    svg.replaceChildren();
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    const plotW = W - M.left - M.right, plotH = H - M.top - M.bottom;
    svg.append(svgEl("rect", { x: M.left, y: M.top, width: plotW, height: plotH, class: "chart-bg" }));
    if (!hasData) {
      svg.append(svgEl("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "chart-empty" }, emptyText));
      svg.dataset.points = "0";
    }
    return { W, plotW, plotH };
  }

  function yAxis(svg, y0, y1, sy, plotW, label) {
    const grid = svgEl("g", { class: "chart-axis" });
    for (const t of DSCharts.ticks(y0, y1)) {
      grid.append(svgEl("line", { x1: M.left, x2: M.left + plotW, y1: sy(t), y2: sy(t), class: "chart-grid" }));
      grid.append(svgEl("text", { x: M.left - 6, y: sy(t) + 4, "text-anchor": "end" }, DS.fmt(t, 3)));
    }
    const mid = M.top + (H - M.top - M.bottom) / 2;
    grid.append(svgEl("text", { x: 14, y: mid, "text-anchor": "middle", transform: `rotate(-90 14 ${mid})` }, label));
    svg.append(grid);
    return grid;
  }

  function legend(svg, palette, y) {
    const group = svgEl("g", { class: "chart-legend" });
    let x = M.left;
    for (const [label, colour] of palette) {
      group.append(svgEl("rect", { x, y: y - 6, width: 12, height: 4, fill: colour }));
      group.append(svgEl("text", { x: x + 16, y }, label));
      x += 28 + label.length * 7;
    }
    svg.append(group);
  }

  /* The metrics reported per epoch by any trial (besides "epoch"), the objective metric first. */
  function metricNames(trials, objective) {
    const names = new Set();
    for (const t of trials) for (const m of t.metrics || []) for (const k of Object.keys(m)) if (k !== "epoch") names.add(k);
    const sorted = [...names].sort();
    return sorted.includes(objective) ? [objective, ...sorted.filter((n) => n !== objective)] : sorted;
  }

  /* One line per trial: `metric` over epochs; trials with status "stopped" (early-stopped) are dashed and end in
     a cross at their last epoch; `epochs` is the budget (the x axis runs to it). */
  function learning(svg, { trials, metric, epochs, variantOf }) {
    const lines = trials.map((t) => ({
      t, points: (t.metrics || []).filter((m) => Number.isFinite(Number(m[metric])))
        .map((m) => [Number(m.epoch), Number(m[metric])]).sort((a, b) => a[0] - b[0]),
    })).filter((l) => l.points.length);
    const { W, plotW, plotH } = frame(svg, "no epoch reported yet", lines.length > 0);
    if (!lines.length) return;
    const xs = lines.flatMap((l) => l.points.map((p) => p[0]));
    const x0 = Math.min(...xs, 1), x1 = Math.max(...xs, epochs || 1, x0 + 1);
    const [y0, y1] = extent(lines.flatMap((l) => l.points.map((p) => p[1])), 0.08);
    const sx = (x) => M.left + ((x - x0) / (x1 - x0)) * plotW;
    const sy = (y) => M.top + plotH - ((y - y0) / (y1 - y0)) * plotH;
    const grid = yAxis(svg, y0, y1, sy, plotW, metric);
    for (let e = Math.ceil(x0); e <= x1; e += Math.max(1, Math.ceil((x1 - x0) / Math.max(2, plotW / 50)))) {
      grid.append(svgEl("line", { x1: sx(e), x2: sx(e), y1: M.top + plotH, y2: M.top + plotH + 4 }));
      grid.append(svgEl("text", { x: sx(e), y: M.top + plotH + 18, "text-anchor": "middle" }, String(e)));
    }
    grid.append(svgEl("text", { x: M.left + plotW / 2, y: H - 22, "text-anchor": "middle" }, "epoch"));
    const palette = colours(lines.map((l) => variantOf(l.t)));
    let stopped = 0;
    for (const { t, points } of lines) {
      const colour = palette.get(variantOf(t));
      const early = t.status === "stopped";
      stopped += early ? 1 : 0;
      const group = svgEl("g", {
        class: `curve${early ? " curve-stopped" : ""}`, "data-index": t.index, "data-status": t.status,
        "data-epochs": points.length, tabindex: 0,
      });
      const last = points[points.length - 1];
      const tip = `trial ${t.index} · ${variantOf(t)} · ${t.status} · ${metric} ${DS.fmt(last[1])} at epoch ${last[0]}` +
        (early ? " (stopped early by ASHA)" : "");
      group.append(svgEl("title", {}, tip));
      const d = points.map(([x, y], i) => `${i ? "L" : "M"}${sx(x)},${sy(y)}`).join(" ");
      const attrs = { d, fill: "none", stroke: colour, "stroke-width": 1.75, "stroke-opacity": 0.85 };
      if (early) attrs["stroke-dasharray"] = "5 3";
      group.append(svgEl("path", attrs));
      for (const [x, y] of points) group.append(svgEl("circle", { cx: sx(x), cy: sy(y), r: 2.5, fill: colour }));
      if (early) {
        const [cx, cy] = [sx(last[0]), sy(last[1])];
        group.append(svgEl("path", {
          d: `M${cx - 5},${cy - 5} L${cx + 5},${cy + 5} M${cx - 5},${cy + 5} L${cx + 5},${cy - 5}`,
          stroke: colour, "stroke-width": 2, class: "curve-stop-mark",
        }));
      }
      svg.append(group);
    }
    legend(svg, [...palette, ...(stopped ? [["dashed + cross: stopped early", "#444"]] : [])], H - 6);
    svg.dataset.points = String(lines.length);
    svg.dataset.stopped = String(stopped);
  }

  /* Rewards per variant: one column per variant, a dot per finished trial (spread sideways so none hide), the
     median as a bar; `mode` says which way is better (the best dot is ringed). */
  function strip(svg, { trials, mode, label, variantOf }) {
    const scored = trials.filter((t) => Number.isFinite(t.reward));
    const { plotW, plotH } = frame(svg, "no finished trials yet", scored.length > 0);
    if (!scored.length) return;
    const variants = [...new Set(scored.map(variantOf))].sort();
    const palette = colours(variants);
    const [y0, y1] = extent(scored.map((t) => t.reward), 0.1);
    const sy = (y) => M.top + plotH - ((y - y0) / (y1 - y0)) * plotH;
    const band = plotW / variants.length;
    const grid = yAxis(svg, y0, y1, sy, plotW, label);
    const best = scored.reduce((a, b) => ((mode === "min" ? b.reward < a.reward : b.reward > a.reward) ? b : a));
    variants.forEach((v, i) => {
      const cx = M.left + band * (i + 0.5);
      const mine = scored.filter((t) => variantOf(t) === v).sort((a, b) => a.reward - b.reward);
      grid.append(svgEl("text", { x: cx, y: M.top + plotH + 18, "text-anchor": "middle" }, `${v} (${mine.length})`));
      const group = svgEl("g", { class: "strip", "data-variant": v, "data-points": mine.length });
      const rewards = mine.map((t) => t.reward);
      const mid = rewards.length % 2 ? rewards[(rewards.length - 1) / 2]
        : (rewards[rewards.length / 2 - 1] + rewards[rewards.length / 2]) / 2;
      const median = svgEl("line", {
        x1: cx - band * 0.3, x2: cx + band * 0.3, y1: sy(mid), y2: sy(mid), stroke: "#1a1a1a", "stroke-width": 2,
        class: "strip-median",
      });
      median.append(svgEl("title", {}, `${v}: median ${DS.fmt(mid)} over ${mine.length} trial(s)`));
      group.append(median);
      const width = Math.min(band * 0.6, 60);
      mine.forEach((t, k) => {
        const offset = mine.length > 1 ? ((k * 0.618) % 1 - 0.5) * width : 0;  // deterministic spread
        const dot = svgEl("circle", {
          cx: cx + offset, cy: sy(t.reward), r: t === best ? 6 : 4, fill: palette.get(v), "fill-opacity": 0.8,
          stroke: t === best ? "#1a1a1a" : "none", "stroke-width": 2, "data-index": t.index, tabindex: 0,
        });
        dot.append(svgEl("title", {}, `trial ${t.index} · ${v} · ${t.status} · reward ${DS.fmt(t.reward)}` +
          (t === best ? " (best)" : "")));
        group.append(dot);
      });
      svg.append(group);
    });
    svg.dataset.points = String(scored.length);
  }

  return { learning, strip, metricNames };
})();
