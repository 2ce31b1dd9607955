/* One search, followed live: progress, charts, the validation stage, best masks, a sortable trial table, download
   and cancel. */
"use strict";

(() => {
  const ACTIVE = new Set(["queued", "running"]);
  const MASKS = 3;
  const searchId = decodeURIComponent(window.location.pathname.split("/").filter(Boolean).pop() || "");
  const base = `/v1/searches/${encodeURIComponent(searchId)}`;
  const state = { search: null, trials: [], controller: new Map(), sort: { key: "index", dir: 1 }, masks: new Map() };
  let refreshTimer = null, refreshing = null, again = false, streamAbort = null;

  const mode = () => ((state.search && state.search.spec.objective) || {}).mode || "max";
  const metric = () => ((state.search && state.search.spec.objective) || {}).metric || "reward";
  const say = (text) => { DS.byId("live-log").textContent = text; };
  const isSearchTrial = (t) => (t.kind || "search") === "search";
  const searchTrials = () => state.trials.filter(isSearchTrial);
  const runLabel = (t) => (isSearchTrial(t) ? "search" : `validation · ${t.arm} · seed ${t.seed}`);

  function rateOf(pattern) {
    if (!pattern) return null;
    const rates = (pattern.sites || []).map((s) => Number(s.rate)).filter(Number.isFinite);
    if (rates.length) return rates.reduce((a, b) => a + b, 0) / rates.length;
    const params = pattern.params || {};
    for (const name of ["rate", "p", "drop_rate"]) if (Number.isFinite(params[name])) return params[name];
    return null;
  }

  const columns = {
    index: (t) => t.index,
    run: (t) => runLabel(t),
    variant: (t) => (t.pattern ? t.pattern.variant : null),
    rate: (t) => rateOf(t.pattern),
    reward: (t) => t.reward,
    epochs: (t) => t.metrics.length,
    time: (t) => t.wall_s,
    node: (t) => t.node,
    status: (t) => t.status,
  };

  function renderSearch() {
    const s = state.search;
    document.title = `${s.name || s.id} · dropsearch`;
    DS.byId("search-title").textContent = s.name || `Search ${s.id}`;
    DS.byId("search-id").textContent = s.id;
    DS.byId("search-model").textContent = `model ${(s.spec.model || {}).name} on ${(s.spec.dataset || {}).name}`;
    const badge = DS.byId("search-status");
    const label = s.cancel_requested && ACTIVE.has(s.status) ? `${s.status} (cancel requested)` : s.status;
    if (badge.textContent !== label) badge.textContent = label;
    badge.className = `badge status-${s.status}`;
    const { trials_done: done, trials_total: total } = s.progress;
    const progress = DS.byId("progress");
    progress.max = total;
    progress.value = done;
    const running = state.trials.filter((t) => t.status === "running").length;
    DS.byId("progress-text").textContent =
      `${done} of ${total} trials done` + (running ? `, ${running} running` : "") + (s.error ? ` · error: ${s.error}` : "");
    DS.byId("best-reward").textContent = DS.fmt(s.best_reward);
    DS.byId("objective").textContent = `${metric()} (${mode() === "min" ? "lower" : "higher"} is better)`;
    DS.byId("download-best").disabled = !s.best_trial_id;
    DS.byId("cancel-search").disabled = !ACTIVE.has(s.status) || s.cancel_requested;
    DS.byId("clone-link").href = `/ui/new?from=${encodeURIComponent(s.id)}`;
    DS.byId("extend-form").hidden = s.status !== "succeeded";
    const ray = DS.byId("ray-link");
    ray.hidden = !s.ray_dashboard_url;
    if (s.ray_dashboard_url) ray.href = s.ray_dashboard_url;
  }

  function renderTrials() {
    const { key, dir } = state.sort;
    const get = columns[key];
    const rows = [...state.trials].sort((a, b) => {
      const x = get(a), y = get(b);
      if (x === y) return a.index - b.index;
      if (x === null || x === undefined) return 1;
      if (y === null || y === undefined) return -1;
      return (typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y))) * dir;
    });
    const best = state.search && state.search.best_trial_id;
    DS.byId("trials-table").querySelector("tbody").replaceChildren(...rows.map((t) => {
      const reward = [DS.fmt(t.reward)];
      if (t.id === best) reward.push(DS.el("span", { className: "best-mark", text: " best" }));
      const validation = !isSearchTrial(t);
      const attrs = { "data-index": t.index, "data-trial-id": t.id, "data-kind": t.kind || "search" };
      if (validation) Object.assign(attrs, { "data-arm": t.arm, "data-seed": t.seed });
      attrs.className = t.id === best ? "best" : (validation ? "validation-run" : null);
      return DS.el("tr", attrs, [
        DS.el("th", { scope: "row", className: "num", text: t.index }),
        DS.el("td", { text: runLabel(t) }),
        DS.el("td", { text: columns.variant(t) || "–" }),
        DS.el("td", { className: "num", text: DS.fmt(rateOf(t.pattern), 3) }),
        DS.el("td", { className: "num" }, reward),
        DS.el("td", { className: "num", text: t.metrics.length }),
        DS.el("td", { className: "num", text: DS.fmt(t.wall_s, 3) }),
        DS.el("td", { text: t.node || "–" }),
        DS.el("td", {}, DS.el("span", { className: `badge status-${t.status}`, text: t.status })),
      ]);
    }));
    for (const th of DS.byId("trials-table").querySelectorAll("th[data-key]")) {
      th.setAttribute("aria-sort", th.dataset.key === key ? (dir > 0 ? "ascending" : "descending") : "none");
    }
  }

  const variantOf = (t) => (t.pattern ? t.pattern.variant : "?");

  function renderCurves() {
    const select = DS.byId("curve-metric");
    const names = DSCurves.metricNames(searchTrials(), metric());
    if (select.options.length !== names.length || names.some((n, i) => select.options[i].value !== n)) {
      const chosen = select.value;
      select.replaceChildren(...names.map((n) => DS.el("option", { value: n, text: n })));
      if (names.includes(chosen)) select.value = chosen;
    }
    const epochs = ((state.search && state.search.spec.budget) || {}).epochs_per_trial;
    const trials = searchTrials();  // validation runs are summarized per arm (the validation section)
    DSCurves.learning(DS.byId("curves-chart"), { trials, metric: select.value || metric(), epochs, variantOf });
    DSCurves.strip(DS.byId("variant-chart"), { trials, mode: mode(), label: `reward (${metric()})`, variantOf });
  }

  function renderCharts() {
    renderCurves();
    const rewarded = searchTrials().filter((t) => Number.isFinite(t.reward)).sort((a, b) => a.index - b.index);
    const best = DSCharts.bestSoFar(rewarded.map((t) => t.reward), mode());
    const last = Math.max(0, ...searchTrials().map((t) => t.index));
    const arms = validationBars(last + 1.5);
    const series = [
      { label: "trial", kind: "dots", color: "#0b57d0", points: rewarded.map((t) => [t.index, t.reward]) },
      { label: "best so far", kind: "step", color: "#1a1a1a", points: rewarded.map((t, i) => [t.index, best[i]]),
        until: arms.length ? last + 0.75 : undefined },
    ];
    if (arms.length) {
      series.push({ label: "validation mean ± sd", kind: "interval", color: "#1b5e20", points: arms });
    }
    DSCharts.draw(DS.byId("reward-chart"), {
      xLabel: "trial", yLabel: `reward (${metric()})`, emptyText: "no finished trials yet",
      xTickMax: arms.length ? last : Infinity, divider: arms.length ? last + 0.75 : null, series,
    });
    const updates = [...state.controller.values()].sort((a, b) => a.updates - b.updates);
    const line = (field) => updates.map((u) => [u.updates, Number(u.stats[field])]);
    DSCharts.draw(DS.byId("entropy-chart"), {
      xLabel: "controller update", yLabel: "entropy (nats)", emptyText: "no controller update yet",
      series: [{ label: "entropy", kind: "line", color: "#7b1fa2", points: line("entropy") }],
    });
    DSCharts.draw(DS.byId("baseline-chart"), {
      xLabel: "controller update", yLabel: "reward", emptyText: "no controller update yet",
      series: [
        { label: "baseline", kind: "line", color: "#b3261e", points: line("baseline") },
        { label: "mean reward", kind: "line", color: "#1b5e20", dash: "6 4", points: line("mean_reward") },
      ],
    });
  }

  const renderValidation = () => DSValidation.render(state.search, ACTIVE.has(state.search.status));
  const validationBars = (x0) => DSValidation.bars(state.search && state.search.validation, x0);

  async function renderMasks() {
    const sign = mode() === "min" ? 1 : -1;
    const top = searchTrials().filter((t) => Number.isFinite(t.reward) && t.pattern)
      .sort((a, b) => sign * (a.reward - b.reward) || a.index - b.index).slice(0, MASKS);
    const box = DS.byId("masks");
    if (!top.length) {
      box.replaceChildren(DS.el("p", { className: "muted", text: "No finished trial yet." }));
      return;
    }
    const figures = [];
    for (const [rank, t] of top.entries()) {
      if (!state.masks.has(t.id)) {
        try {
          const blob = await (await DS.request(t.mask_url)).blob();
          state.masks.set(t.id, URL.createObjectURL(blob));
        } catch (error) {
          state.masks.set(t.id, null);
        }
      }
      const src = state.masks.get(t.id);
      const caption = `${rank === 0 ? "Best: " : ""}trial ${t.index}, ${t.pattern.variant}, reward ${DS.fmt(t.reward)}`;
      const picture = src
        ? DS.el("img", { src, alt: `Dropout masks of trial ${t.index} (${t.pattern.variant})` })
        : DS.el("p", { className: "error", text: "picture unavailable" });
      figures.push(DS.el("figure", { "data-trial-id": t.id }, [picture, DS.el("figcaption", { text: caption })]));
    }
    box.replaceChildren(...figures);
  }

  async function loadTrials() {
    const all = [];
    for (let offset = 0; ; offset += 200) {
      const page = await DS.api(`${base}/trials?limit=200&offset=${offset}`);
      all.push(...page.data);
      if (!page.data.length || all.length >= page.count) break;
    }
    state.trials = all;
  }

  /* Reload the search and its trials; a call while one is under way runs once more after it (not lost). */
  async function refresh() {
    if (refreshing) {
      again = true;
      return refreshing;
    }
    refreshing = (async () => {
      try {
        const [search] = await Promise.all([DS.api(base), loadTrials()]);
        state.search = search;
        renderSearch();
        renderTrials();
        renderValidation();
        renderCharts();
        await renderMasks();
      } catch (error) {
        if (error.status === 404) showNotFound(error.detail);
      } finally {
        refreshing = null;
        if (again) {
          again = false;
          scheduleRefresh(0);
        }
      }
    })();
    return refreshing;
  }

  function scheduleRefresh(delay = 250) {
    if (!refreshTimer) refreshTimer = setTimeout(() => { refreshTimer = null; refresh(); }, delay);
  }

  function onEvent({ event, data }) {
    const kind = event.replace(/\./g, "_");
    const d = data || {};
    if (kind === "controller_updated" && d.stats) {
      state.controller.set(d.version ?? d.updates, d);
      renderCharts();
      say(`Controller update ${d.updates}: entropy ${DS.fmt(d.stats.entropy)}, baseline ${DS.fmt(d.stats.baseline)}`);
      return;
    }
    if (kind === "validation_updated" && d.validation && state.search) {
      state.search.validation = d.validation;  // the table at once; the trials follow with the refresh
      renderValidation();
      renderCharts();
      say(`Validation ${d.final ? "finished" : "updated"}: best mean so far ${d.validation.chosen || "–"}`);
    } else if (kind === "trial_started") {
      const run = d.kind === "validation" ? `Validation run of ${d.arm} (seed ${d.seed})` : `Trial ${d.index}`;
      say(`${run} started${d.node ? ` on ${d.node}` : ""}`);
    } else if (kind === "trial_reported") say(`Trial ${d.index}: epoch ${d.epoch} reported`);
    else if (kind === "trial_finished") say(`Trial ${d.index} ${d.status}: reward ${DS.fmt(d.reward)}`);
    else if (kind === "search_finished") say(`Search ${d.status}${d.error ? `: ${d.error}` : ""}`);
    else if (kind === "search_extended") say(`Search extended by ${d.added} trial(s) to ${d.trials_total}`);
    else if (kind !== "end") return;
    scheduleRefresh(kind === "trial_reported" ? 1000 : 250);
  }

  function follow() {
    streamAbort = new AbortController();
    const stateText = DS.byId("stream-state");
    DSStream.follow(`${base}/events`, {
      signal: streamAbort.signal,
      onEvent,
      onState: (s, error) => {
        stateText.textContent = { live: "live", reconnecting: "reconnecting…", ended: "search finished" }[s] ||
          `stopped (${error ? error.message : s})`;
        if (s === "ended") refresh();
      },
    });
  }

  async function download() {
    const message = DS.byId("action-message");
    try {
      const response = await DS.request(`${base}/best`);
      const match = /filename="([^"]+)"/.exec(response.headers.get("Content-Disposition") || "");
      const url = URL.createObjectURL(await response.blob());
      const link = DS.el("a", { href: url, download: match ? match[1] : `${searchId}-best-pattern.json`, hidden: true });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
      message.textContent = "Best pattern downloaded.";
    } catch (error) {
      message.textContent = `Download failed: ${error.message}`;
    }
  }

  async function cancel() {
    const s = state.search;
    if (!window.confirm(`Cancel search "${s.name || s.id}"? Running trials are stopped.`)) return;
    const message = DS.byId("action-message");
    try {
      state.search = await DS.api(`${base}/cancel`, { method: "POST" });
      renderSearch();
      message.textContent = state.search.status === "cancelled" ? "Search cancelled." : "Cancel requested.";
    } catch (error) {
      message.textContent = `Cancel failed: ${error.message}`;
    }
  }

  async function downloadCsv(event) {
    event.preventDefault();
    const message = DS.byId("action-message");
    try {
      const response = await DS.request(`${base}/trials?format=csv`);
      const match = /filename="([^"]+)"/.exec(response.headers.get("Content-Disposition") || "");
      const url = URL.createObjectURL(await response.blob());
      const link = DS.el("a", { href: url, download: match ? match[1] : `${searchId}-trials.csv`, hidden: true });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
      message.textContent = "Trials downloaded as CSV.";
    } catch (error) {
      message.textContent = `Download failed: ${error.message}`;
    }
  }

  async function extend(event) {
    event.preventDefault();
    const message = DS.byId("action-message");
    const trials = Number(DS.byId("extend-trials").value);
    try {
      state.search = await DS.api(`${base}/extend`, { method: "POST", json: { trials } });
      renderSearch();
      message.textContent = `Extended by ${trials} trial(s); the search is ${state.search.status} again.`;
      if (streamAbort) streamAbort.abort();
      follow();
    } catch (error) {
      message.textContent = `Extend failed: ${error.message}`;
    }
  }

  function showNotFound(detail) {
    if (streamAbort) streamAbort.abort();
    DS.byId("content").hidden = true;
    DS.byId("not-found").hidden = false;
    DS.byId("not-found-detail").textContent = detail || `There is no search ${searchId} for your API key.`;
    document.title = "Search not found · dropsearch";
  }

  async function ready() {
    try {
      state.search = await DS.api(base);
    } catch (error) {
      if (error.status === 404 || error.status === 422) showNotFound(error.detail);
      else if (error.status !== 401) say(`Could not load the search: ${error.message}`);
      return;
    }
    DS.byId("not-found").hidden = true;
    DS.byId("content").hidden = false;
    renderSearch();
    await refresh();
    follow();
  }

  document.addEventListener("DOMContentLoaded", () => {
    for (const th of DS.byId("trials-table").querySelectorAll("th[data-key]")) {
      th.querySelector("button").addEventListener("click", () => {
        const key = th.dataset.key;
        state.sort = { key, dir: state.sort.key === key ? -state.sort.dir : 1 };
        renderTrials();
      });
    }
    let chartWidth = 0;
    new ResizeObserver(([entry]) => {
      const width = Math.round(entry.contentRect.width);
      if (state.search && width !== chartWidth) renderCharts();
      chartWidth = width;
    }).observe(DS.byId("entropy-chart"));
    DS.byId("download-best").addEventListener("click", download);
    DS.byId("cancel-search").addEventListener("click", cancel);
    DS.byId("csv-link").addEventListener("click", downloadCsv);
    DS.byId("extend-form").addEventListener("submit", extend);
    DS.byId("curve-metric").addEventListener("change", renderCurves);
    DS.start(ready);
  });
})();
