/* Small SVG charts drawn from JSON (no library): dots, step lines, lines and error bars over a shared x axis. */
"use strict";

const DSCharts = (() => {
  const NS = "http://www.w3.org/2000/svg";
  const H = 260, M = { left: 64, right: 16, top: 16, bottom: 52 };

  function svgEl(tag, attrs = {}, text) {
    const node = document.createElementNS(NS, tag);
    for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  /* About `count` round tick values covering [lo, hi]. */
  function ticks(lo, hi, count = 5) {
    if (!(hi > lo)) return [lo];
    const raw = (hi - lo) / count;
    const power = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= raw) || raw;
    const out = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
    return out;
  }

  /* [lo, hi] of `values`, widened by `pad` of their range on each side ([0, 1] when none is finite). */
  function extent(values, pad) {
    let lo = Math.min(...values), hi = Math.max(...values);
    if (!Number.isFinite(lo)) return [0, 1];
    if (lo === hi) { lo -= Math.abs(lo) * 0.1 || 0.5; hi += Math.abs(hi) * 0.1 || 0.5; }
    const margin = (hi - lo) * pad;
    return [lo - margin, hi + margin];
  }

  /* The [x, y] pairs a series spans: an "interval" point [x, y, low, high, name] spans its whole bar. */
  const spanned = (s) => (s.kind === "interval" ? s.points.flatMap((p) => [[p[0], p[1]], [p[0], p[2]], [p[0], p[3]]])
    : s.points);

  /* Draw `series` ([{label, points: [[x, y]], kind: "dots"|"step"|"line", color, dash}, or kind "interval" with
     points [x, mean, low, high, name, title]: an error bar low..high with a marker at mean and the name above])
     into `svg`, at the svg's own width in CSS pixels (so the text keeps its size; redraw when the width changes).
     `xTickMax`: no x tick beyond it; `divider`: a dashed vertical line at that x (e.g. between search trials and
     validation arms). */
  function draw(svg, { series, xLabel, yLabel, emptyText, integerX = true, xTickMax = Infinity, divider = null }) {
    const W = Math.max(280, Math.round(svg.getBoundingClientRect().width) || 600);
    svg.replaceChildren();
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    svg.setAttribute("preserveAspectRatio", "xMidYMid meet");
    const points = series.flatMap(spanned).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
    const plotW = W - M.left - M.right, plotH = H - M.top - M.bottom;
    svg.append(svgEl("rect", { x: M.left, y: M.top, width: plotW, height: plotH, class: "chart-bg" }));
    if (!points.length) {
      svg.append(svgEl("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "chart-empty" },
        emptyText || "no data yet"));
      svg.dataset.points = "0";
      return;
    }
    const [x0, x1] = extent(points.map((p) => p[0]), 0.03);
    const [y0, y1] = extent(points.map((p) => p[1]), 0.08);
    const sx = (x) => M.left + ((x - x0) / (x1 - x0)) * plotW;
    const sy = (y) => M.top + plotH - ((y - y0) / (y1 - y0)) * plotH;

    const grid = svgEl("g", { class: "chart-axis" });
    for (const t of ticks(y0, y1)) {
      grid.append(svgEl("line", { x1: M.left, x2: M.left + plotW, y1: sy(t), y2: sy(t), class: "chart-grid" }));
      grid.append(svgEl("text", { x: M.left - 6, y: sy(t) + 4, "text-anchor": "end" }, DS.fmt(t, 3)));
    }
    const xTicks = ticks(x0, Math.min(x1, xTickMax), Math.max(2, Math.floor(plotW / 60)));
    for (const t of xTicks.filter((v) => (!integerX || Number.isInteger(v)) && v <= xTickMax)) {
      grid.append(svgEl("line", { x1: sx(t), x2: sx(t), y1: M.top + plotH, y2: M.top + plotH + 4 }));
      grid.append(svgEl("text", { x: sx(t), y: M.top + plotH + 18, "text-anchor": "middle" }, DS.fmt(t, 3)));
    }
    grid.append(svgEl("text", { x: M.left + plotW / 2, y: H - 22, "text-anchor": "middle" }, xLabel));
    grid.append(svgEl("text", {
      x: 14, y: M.top + plotH / 2, "text-anchor": "middle", transform: `rotate(-90 14 ${M.top + plotH / 2})`,
    }, yLabel));
    if (Number.isFinite(divider)) {
      grid.append(svgEl("line", { x1: sx(divider), x2: sx(divider), y1: M.top, y2: M.top + plotH,
        class: "chart-divider", "stroke-dasharray": "4 4" }));
    }
    svg.append(grid);

    const legend = svgEl("g", { class: "chart-legend" });
    let legendX = M.left;
    series.forEach((s) => {
      const pts = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
      const group = svgEl("g", { class: `chart-series chart-${s.kind}`, "data-label": s.label });
      if (s.kind === "interval") {
        for (const [x, y, low, high, name, title] of pts) {
          const bar = svgEl("g", { class: "chart-bar", "data-name": name, "data-mean": y, "data-low": low,
            "data-high": high });
          const cx = sx(x);
          bar.append(svgEl("line", { x1: cx, x2: cx, y1: sy(low), y2: sy(high), stroke: s.color, "stroke-width": 2 }));
          for (const v of [low, high]) {
            bar.append(svgEl("line", { x1: cx - 5, x2: cx + 5, y1: sy(v), y2: sy(v), stroke: s.color, "stroke-width": 2 }));
          }
          bar.append(svgEl("rect", { x: cx - 4, y: sy(y) - 4, width: 8, height: 8, fill: s.color }));
          bar.append(svgEl("text", { x: cx, y: sy(high) - 6, "text-anchor": "middle", class: "chart-interval-name" },
            name));
          bar.append(svgEl("title", {}, title || `${name}: ${DS.fmt(y)} (${DS.fmt(low)} to ${DS.fmt(high)})`));
          group.append(bar);
        }
      } else if (s.kind === "dots") {
        for (const [x, y] of pts) {
          const dot = svgEl("circle", { cx: sx(x), cy: sy(y), r: 4, fill: s.color });
          dot.append(svgEl("title", {}, `${xLabel} ${DS.fmt(x)}: ${DS.fmt(y)}`));
          group.append(dot);
        }
      } else if (pts.length) {
        let d = `M${sx(pts[0][0])},${sy(pts[0][1])}`;
        for (let i = 1; i < pts.length; i++) {
          const [x, y] = pts[i];
          d += s.kind === "step" ? ` H${sx(x)} V${sy(y)}` : ` L${sx(x)},${sy(y)}`;
        }
        if (s.kind === "step") d += ` H${Number.isFinite(s.until) ? sx(s.until) : M.left + plotW}`;
        const attrs = { d, fill: "none", stroke: s.color, "stroke-width": 2 };
        if (s.dash) attrs["stroke-dasharray"] = s.dash;
        group.append(svgEl("path", attrs));
      }
      group.dataset.points = String(pts.length);
      svg.append(group);
      legend.append(svgEl("rect", { x: legendX, y: H - 12, width: 12, height: 4, fill: s.color }));
      const label = svgEl("text", { x: legendX + 16, y: H - 6 }, s.label);
      legend.append(label);
      legendX += 28 + s.label.length * 7;
    });
    svg.append(legend);
    svg.dataset.points = String(points.length);
  }

  /* Running best of `values` ("max" or "min"). */
  function bestSoFar(values, mode = "max") {
    const out = [];
    for (const v of values) {
      out.push(out.length ? (mode === "min" ? Math.min(out[out.length - 1], v) : Math.max(out[out.length - 1], v)) : v);
    }
    return out;
  }

  return { draw, bestSoFar, ticks, svgEl, extent };
})();
