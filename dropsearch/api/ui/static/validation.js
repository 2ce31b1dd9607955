/* The validation stage of a search page: its table (mean, sd, n, paired gaps, beats noise), its conclusion, and
   the arms as error bars for the reward chart. The report is the search's `validation` (GET /v1/searches/{id}, or
   the `validation_updated` event's data); values are the raw objective, `mode` says which way is better. */
"use strict";

const DSValidation = (() => {
  /* The arms with a mean as interval points [x, mean, mean - sd, mean + sd, name, title] for DSCharts.draw, at
     x0, x0 + 1, ... (an arm with one seed has no sd: a bar of zero length). */
  function bars(report, x0) {
    const arms = ((report && report.arms) || []).filter((a) => Number.isFinite(a.mean));
    return arms.map((a, i) => {
      const sd = Number.isFinite(a.sd) ? a.sd : 0;
      const chosen = a.name === report.chosen ? " (chosen)" : "";
      const title = `${a.name}${chosen}: mean ${DS.fmt(a.mean)} ± ${DS.fmt(sd)} over ${a.n} seed(s)`;
      return [x0 + i, a.mean, a.mean - sd, a.mean + sd, a.name, title];
    });
  }

  /* "+0.1067 [+0.09232, +0.121]": a paired gap and its interval. */
  const signed = (v) => (Number.isFinite(v) ? `${v >= 0 ? "+" : ""}${DS.fmt(v)}` : "–");
  const gapText = (g) => (Number.isFinite(g.mean) ? `${signed(g.mean)} [${signed(g.low)}, ${signed(g.high)}]` : "–");

  function notes(arm) {
    const out = [];
    if (arm.stopped_early) {
      out.push(`stopped early${arm.seeds_when_stopped ? ` after ${arm.seeds_when_stopped} seeds` : ""}`);
    }
    if ((arm.failed_seeds || []).length) out.push(`${arm.failed_seeds.length} failed`);
    return out.join("; ");
  }

  function row(report, arm, baselines) {
    const chosen = arm.name === report.chosen;
    const name = [arm.name];
    if (chosen) name.push(DS.el("span", { className: "best-mark", text: " chosen" }));
    const cells = [
      DS.el("th", { scope: "row" }, name),
      DS.el("td", { text: arm.origin }),
      DS.el("td", { className: "num", text: DS.fmt(arm.mean) }),
      DS.el("td", { className: "num", text: DS.fmt(arm.sd) }),
      DS.el("td", { className: "num", text: arm.n }),
    ];
    for (const b of baselines) {
      const g = (arm.gaps || {})[b];
      if (!g) {
        cells.push(DS.el("td", { text: "" }), DS.el("td", { text: "" }));
        continue;
      }
      const verdict = g.beats_noise ? "yes" : (g.worse_beyond_noise ? "worse" : "no");
      const style = g.beats_noise ? "beats" : (g.worse_beyond_noise ? "worse" : null);
      cells.push(DS.el("td", { className: "num", "data-baseline": b, text: gapText(g) }));
      cells.push(DS.el("td", { "data-baseline": b }, DS.el("span", { className: style, text: verdict })));
    }
    cells.push(DS.el("td", { text: notes(arm) }));
    return DS.el("tr", { "data-arm": arm.name, className: chosen ? "chosen" : null }, cells);
  }

  /* Show `search.validation` in the #validation section (hidden while the search has none). */
  function render(search, active) {
    const report = search && search.validation;
    DS.byId("validation").hidden = !report;
    if (!report) return;
    const arms = report.arms || [];
    const baselines = arms.filter((a) => a.origin === "baseline").map((a) => a.name);
    const badge = DS.byId("validation-state");
    badge.textContent = active ? "running" : "done";
    badge.className = `badge status-${active ? "running" : "succeeded"}`;
    const level = `${Math.round((report.level || 0.95) * 100)}%`;
    const better = report.mode === "min" ? "lower" : "higher";
    DS.byId("validation-summary").textContent = "The top search patterns and the baselines, re-trained with the same "
      + `${(report.seeds || []).length} seeds (${report.metric || "reward"}, ${better} is better). Gap: arm minus `
      + `baseline, seed by seed, with its paired ${level} interval; "beats": the whole interval is on the better side.`;
    DS.byId("validation-conclusion").textContent = report.conclusion || "";
    const head = ["Arm", "Origin", "Mean", "SD", "n"];
    for (const b of baselines) head.push(`Gap vs ${b} (${level})`, `Beats ${b}`);
    head.push("Notes");
    const table = DS.byId("validation-table");
    table.querySelector("thead tr").replaceChildren(...head.map((h) => DS.el("th", { scope: "col", text: h })));
    table.querySelector("tbody").replaceChildren(...arms.map((a) => row(report, a, baselines)));
  }

  return { bars, render, gapText };
})();
