/* The searches list: status, progress and best reward of the caller's searches (refreshed while any is active). */
"use strict";

(() => {
  const PAGE = 50;
  const ACTIVE = new Set(["queued", "running"]);
  let shown = PAGE;
  let timer = null;

  function row(search) {
    const done = search.progress.trials_done, total = search.progress.trials_total;
    const link = DS.el("a", { href: `/ui/searches/${encodeURIComponent(search.id)}`, text: search.name || search.id });
    const progress = DS.el("progress", { max: total, value: done, "aria-label": `${done} of ${total} trials` });
    return DS.el("tr", { "data-search-id": search.id }, [
      DS.el("td", {}, link),
      DS.el("td", {}, DS.el("span", { className: `badge status-${search.status}`, text: search.status })),
      DS.el("td", {}, [progress, DS.el("span", { className: "progress-label", text: ` ${done} / ${total}` })]),
      DS.el("td", { className: "num", text: DS.fmt(search.best_reward) }),
      DS.el("td", { text: DS.fmtDate(search.created_at) }),
    ]);
  }

  async function load() {
    clearTimeout(timer);
    const status = DS.byId("list-status");
    try {
      const page = await DS.api(`/v1/searches?limit=${Math.min(shown, 200)}`);
      const body = DS.byId("searches-table").querySelector("tbody");
      body.replaceChildren(...page.data.map(row));
      if (!page.data.length) {
        body.append(DS.el("tr", {}, DS.el("td", { colspan: 5, text: "No searches yet: submit one with the CLI." })));
      }
      status.textContent = `${page.count} search${page.count === 1 ? "" : "es"}`;
      DS.byId("more").hidden = page.count <= page.data.length || shown >= 200;
      DS.byId("content").hidden = false;
      if (page.data.some((s) => ACTIVE.has(s.status))) timer = setTimeout(load, 5000);
    } catch (error) {
      if (error.status !== 401) {
        DS.byId("content").hidden = false;
        status.textContent = `Could not load searches: ${error.message}`;
      }
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    DS.byId("refresh").addEventListener("click", load);
    DS.byId("more").addEventListener("click", () => { shown += PAGE; load(); });
    DS.start(load);
  });
})();
