/* New search: a JSON/YAML job spec editor checked against GET /v1/spec-schema and the catalog before it is sent,
   pickers for the catalog's models, datasets and variants, and "clone" (/ui/new?from=<id>) of an earlier search. */
"use strict";

(() => {
  const state = { schema: null, catalog: null, format: "json", source: null };
  const editor = () => DS.byId("spec-editor");
  const TEMPLATE = {
    name: "my-search",
    model: { name: "convnet" },
    dataset: { name: "digits" },
    space: { variants: ["bernoulli", "dropblock", "autodropout"] },
    controller: { name: "reinforce", batch_size: 4 },
    budget: { trials: 8, epochs_per_trial: 5, max_concurrent: 2, early_stopping: "asha" },
  };

  function dump(spec) {
    return state.format === "yaml" ? window.jsyaml.dump(spec, { noRefs: true, lineWidth: 100 }) : JSON.stringify(spec, null, 2);
  }

  /* The editor's spec, or throws an Error naming the syntax problem. */
  function parse() {
    const text = editor().value;
    if (state.format === "yaml") {
      try {
        return window.jsyaml.load(text);
      } catch (error) {
        throw new Error(`YAML: ${error.reason || error.message}${error.mark ? ` at line ${error.mark.line + 1}` : ""}`);
      }
    }
    try {
      return JSON.parse(text);
    } catch (error) {
      throw new Error(`JSON: ${error.message}`);
    }
  }

  /* Schema problems, then names the catalog does not know. */
  function problemsOf(spec) {
    if (spec === null || typeof spec !== "object" || Array.isArray(spec)) return ["spec: must be a mapping (model, dataset, ...)"];
    const out = DSSchema.validate(state.schema, spec);
    const known = (list) => new Set(list.map((e) => e.name));
    const c = state.catalog;
    if (spec.model && typeof spec.model.name === "string" && !known(c.models).has(spec.model.name)) {
      out.push(`model.name: unknown model "${spec.model.name}" (one of ${c.models.map((m) => m.name).join(", ")})`);
    }
    if (spec.dataset && typeof spec.dataset.name === "string" && !known(c.datasets).has(spec.dataset.name)) {
      out.push(`dataset.name: unknown dataset "${spec.dataset.name}" (one of ${c.datasets.map((d) => d.name).join(", ")})`);
    }
    const variants = (spec.space || {}).variants;
    if (Array.isArray(variants)) {
      for (const v of variants) {
        if (!known(c.variants).has(v)) out.push(`space.variants: unknown variant "${v}" (see the list above)`);
      }
    }
    return out;
  }

  function showProblems(problems, note) {
    const list = DS.byId("problems");
    list.replaceChildren(...problems.map((p) => DS.el("li", { text: p })));
    editor().setAttribute("aria-invalid", problems.length ? "true" : "false");
    DS.byId("spec-status").textContent = note || (problems.length ? `${problems.length} problem(s)` : "The spec is valid.");
  }

  function check() {
    let spec;
    try {
      spec = parse();
    } catch (error) {
      showProblems([error.message]);
      return null;
    }
    const problems = problemsOf(spec);
    showProblems(problems);
    return problems.length ? null : spec;
  }

  function setSpec(spec) {
    editor().value = dump(spec);
    check();
  }

  function fillPickers() {
    const c = state.catalog;
    const model = DS.byId("pick-model"), dataset = DS.byId("pick-dataset");
    model.replaceChildren(...c.models.map((m) => DS.el("option", { value: m.name, text: m.name })));
    dataset.replaceChildren(...c.datasets.map((d) => DS.el("option", { value: d.name, text: d.name })));
    const help = (select, list, target) => {
      const entry = list.find((e) => e.name === select.value);
      DS.byId(target).textContent = entry ? entry.description : "";
    };
    model.addEventListener("change", () => help(model, c.models, "pick-model-help"));
    dataset.addEventListener("change", () => help(dataset, c.datasets, "pick-dataset-help"));
    const box = DS.byId("pick-variants");
    box.replaceChildren(box.querySelector("legend"), ...c.variants.map((v) => DS.el("label", { title: v.description }, [
      DS.el("input", { type: "checkbox", value: v.name, name: "variant" }), ` ${v.name}`,
    ])));
    return () => { help(model, c.models, "pick-model-help"); help(dataset, c.datasets, "pick-dataset-help"); };
  }

  function showPicks(spec) {
    if (spec.model) DS.byId("pick-model").value = spec.model.name;
    if (spec.dataset) DS.byId("pick-dataset").value = spec.dataset.name;
    const chosen = new Set((spec.space || {}).variants || state.catalog.default_variants);
    for (const box of DS.byId("pick-variants").querySelectorAll("input")) box.checked = chosen.has(box.value);
    DS.byId("pick-model").dispatchEvent(new Event("change"));
    DS.byId("pick-dataset").dispatchEvent(new Event("change"));
  }

  function applyPicks() {
    let spec;
    try {
      spec = parse() || {};
    } catch (error) {
      showProblems([error.message], "Fix the spec first: the choices are written into it.");
      return;
    }
    const model = DS.byId("pick-model").value, dataset = DS.byId("pick-dataset").value;
    if (!spec.model || spec.model.name !== model) spec.model = { name: model };
    if (!spec.dataset || spec.dataset.name !== dataset) spec.dataset = { name: dataset };
    spec.space = Object.assign({}, spec.space, {
      variants: [...DS.byId("pick-variants").querySelectorAll("input:checked")].map((b) => b.value),
    });
    setSpec(spec);
  }

  function toggleWarmStart() {
    let spec;
    try { spec = parse(); } catch (error) { showProblems([error.message]); return; }
    spec.controller = Object.assign({}, spec.controller);
    if (DS.byId("warm-start").checked) spec.controller.warm_start_from = state.source.id;
    else delete spec.controller.warm_start_from;
    setSpec(spec);
  }

  async function submit(event) {
    event.preventDefault();
    const spec = check();
    if (!spec) {
      DS.byId("spec-status").textContent = "Not sent: fix the problems listed below.";
      editor().focus();
      return;
    }
    const button = DS.byId("submit-spec");
    button.disabled = true;
    try {
      const created = await DS.api("/v1/searches", { method: "POST", json: spec });
      window.location.assign(`/ui/searches/${encodeURIComponent(created.id)}`);
    } catch (error) {
      showProblems(error.detail ? error.detail.split("; ") : [error.message], "The server refused the spec.");
      button.disabled = false;
    }
  }

  async function ready() {
    const from = new URLSearchParams(window.location.search).get("from");
    try {
      [state.schema, state.catalog, state.source] = await Promise.all([
        DS.api("/v1/spec-schema"), DS.api("/v1/catalog"), from ? DS.api(`/v1/searches/${encodeURIComponent(from)}`) : null,
      ]);
    } catch (error) {
      if (error.status !== 401) {
        DS.byId("content").hidden = false;
        DS.byId("spec-status").textContent = `Could not load: ${error.message}`;
      }
      return;
    }
    DS.byId("content").hidden = false;
    const describe = fillPickers();
    let spec = JSON.parse(JSON.stringify(TEMPLATE));
    if (state.source) {
      spec = JSON.parse(JSON.stringify(state.source.spec));
      spec.name = `${state.source.name || state.source.id}-copy`.slice(0, 200);
      if (spec.controller) delete spec.controller.warm_start_from;
      const note = DS.byId("clone-note");
      note.hidden = false;
      note.textContent = `Cloned from search ${state.source.name || ""} (${state.source.id}); change what you like.`;
      DS.byId("warm-start-row").hidden = false;
    }
    showPicks(spec);
    describe();
    setSpec(spec);
  }

  document.addEventListener("DOMContentLoaded", () => {
    let timer = null;
    editor().addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(check, 300); });
    for (const radio of document.querySelectorAll('input[name="format"]')) {
      radio.addEventListener("change", () => {
        let spec;
        try { spec = parse(); } catch (error) {
          showProblems([error.message], `Fix the ${state.format.toUpperCase()} first to switch formats.`);
          document.querySelector(`input[name="format"][value="${state.format}"]`).checked = true;
          return;
        }
        state.format = radio.value;
        setSpec(spec);
      });
    }
    DS.byId("apply-picks").addEventListener("click", applyPicks);
    DS.byId("warm-start").addEventListener("change", toggleWarmStart);
    DS.byId("spec-form").addEventListener("submit", submit);
    DS.start(ready);
  });
})();
