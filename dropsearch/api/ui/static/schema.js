/* A small JSON-schema checker for the schema of GET /v1/spec-schema (what pydantic emits: $ref/$defs, anyOf,
   type, enum, const, bounds, lengths, pattern, items, properties, required, additionalProperties). Problems are
   "field.path: message", like the API's 422 details. */
"use strict";

const DSSchema = (() => {
  const typeOf = (v) => (v === null ? "null" : Array.isArray(v) ? "array" : Number.isInteger(v) ? "integer" : typeof v);
  const isType = (v, t) => (t === "number" ? typeof v === "number" && Number.isFinite(v) : typeOf(v) === t);
  const show = (v) => JSON.stringify(v);

  function resolve(root, schema) {
    let s = schema;
    while (s && s.$ref) {
      const path = s.$ref.replace(/^#\//, "").split("/");
      s = path.reduce((node, key) => (node ? node[key] : undefined), root);
    }
    return s || {};
  }

  function check(root, schema, value, path, out) {
    const s = resolve(root, schema);
    const at = path || "spec";
    if (s.anyOf) {
      const branches = s.anyOf.map((b) => { const errs = []; check(root, b, value, path, errs); return errs; });
      if (branches.some((errs) => !errs.length)) return;
      const real = branches.filter((errs, i) => resolve(root, s.anyOf[i]).type !== "null");
      out.push(...(real.length === 1 ? real[0] : [`${at}: ${show(value)} matches none of the allowed forms`]));
      return;
    }
    if (s.type) {
      const types = [].concat(s.type);
      if (!types.some((t) => isType(value, t))) {
        out.push(`${at}: must be ${types.join(" or ")}, got ${typeOf(value)}`);
        return;
      }
    }
    if (s.const !== undefined && value !== s.const) out.push(`${at}: must be ${show(s.const)}`);
    if (s.enum && !s.enum.some((e) => e === value)) out.push(`${at}: must be one of ${s.enum.map(show).join(", ")}`);
    if (typeof value === "number") {
      if (s.minimum !== undefined && value < s.minimum) out.push(`${at}: must be >= ${s.minimum}`);
      if (s.maximum !== undefined && value > s.maximum) out.push(`${at}: must be <= ${s.maximum}`);
      if (s.exclusiveMinimum !== undefined && value <= s.exclusiveMinimum) out.push(`${at}: must be > ${s.exclusiveMinimum}`);
      if (s.exclusiveMaximum !== undefined && value >= s.exclusiveMaximum) out.push(`${at}: must be < ${s.exclusiveMaximum}`);
    }
    if (typeof value === "string") {
      if (s.minLength !== undefined && value.length < s.minLength) out.push(`${at}: must have at least ${s.minLength} character(s)`);
      if (s.maxLength !== undefined && value.length > s.maxLength) out.push(`${at}: must have at most ${s.maxLength} characters`);
      if (s.pattern && !new RegExp(s.pattern, "u").test(value)) out.push(`${at}: must match ${s.pattern}`);
    }
    if (Array.isArray(value)) {
      if (s.minItems !== undefined && value.length < s.minItems) out.push(`${at}: must have at least ${s.minItems} item(s)`);
      if (s.maxItems !== undefined && value.length > s.maxItems) out.push(`${at}: must have at most ${s.maxItems} items`);
      if (s.items) value.forEach((item, i) => check(root, s.items, item, `${at}[${i}]`, out));
    }
    if (typeOf(value) === "object") {
      const props = s.properties || {};
      for (const name of s.required || []) if (!(name in value)) out.push(`${path ? `${path}.` : ""}${name}: is required`);
      for (const [name, item] of Object.entries(value)) {
        const sub = path ? `${path}.${name}` : name;
        if (props[name]) check(root, props[name], item, sub, out);
        else if (s.additionalProperties === false) out.push(`${sub}: unknown field (allowed: ${Object.keys(props).join(", ")})`);
        else if (s.additionalProperties && typeof s.additionalProperties === "object") {
          check(root, s.additionalProperties, item, sub, out);
        }
      }
    }
  }

  /* The problems of `value` against the JSON schema `schema` (an empty list when it conforms). */
  function validate(schema, value) {
    const out = [];
    check(schema, schema, value, "", out);
    return out;
  }

  return { validate };
})();
