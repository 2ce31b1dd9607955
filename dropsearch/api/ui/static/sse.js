/* Server-sent events read with fetch() + a ReadableStream, so the API key goes in the Authorization header
   (EventSource cannot send one, and the key must never be put in a URL). Parsing follows the SSE spec:
   "field: value" lines, a blank line dispatches, lines starting with ":" are comments. */
"use strict";

const DSStream = (() => {
  /* A push parser: feed it text chunks, it calls onMessage({event, data, id}) per dispatched message. */
  function makeParser(onMessage, onRetry) {
    let buffer = "";
    let data = [];
    let event = "";
    let id = null;

    function line(text) {
      if (text === "") {
        if (data.length) onMessage({ event: event || "message", data: data.join("\n"), id });
        data = [];
        event = "";
        id = null;
        return;
      }
      if (text.startsWith(":")) return;
      const colon = text.indexOf(":");
      const field = colon < 0 ? text : text.slice(0, colon);
      let value = colon < 0 ? "" : text.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "data") data.push(value);
      else if (field === "event") event = value;
      else if (field === "id" && !value.includes("\0")) id = value;
      else if (field === "retry" && /^\d+$/.test(value)) onRetry(Number(value));
    }

    return (chunk) => {
      buffer += chunk;
      const parts = buffer.split(/\r\n|\n|\r(?!$)/);
      buffer = parts.pop();
      for (const part of parts) line(part);
    };
  }

  function sleep(ms, signal) {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      if (signal) signal.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
    });
  }

  /* Follow a search's event stream until its "end" event; reconnects after a dropped connection, resuming after
     the last event id. onEvent({event, id, data}) gets data parsed as JSON; onState(state, error) gets
     "live", "reconnecting", "ended" or "error". */
  async function follow(path, { onEvent, onState, signal }) {
    let lastId = 0;
    let retryMs = 2000;
    while (!(signal && signal.aborted)) {
      let ended = false;
      try {
        const separator = path.includes("?") ? "&" : "?";
        const response = await DS.request(`${path}${separator}after=${lastId}`, {
          headers: { Accept: "text/event-stream" },
          signal,
        });
        onState("live");
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        const push = makeParser((message) => {
          if (message.id !== null && /^\d+$/.test(message.id)) lastId = Number(message.id);
          let data = message.data;
          try { data = JSON.parse(message.data); } catch (_) { /* keep the text */ }
          if (message.event === "end") ended = true;
          onEvent({ event: message.event, id: message.id, data });
        }, (ms) => { retryMs = ms; });
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          push(value);
        }
      } catch (error) {
        if (signal && signal.aborted) return;
        if (error instanceof DS.ApiError && error.status < 500) {
          onState("error", error);
          return;
        }
      }
      if (ended) {
        onState("ended");
        return;
      }
      onState("reconnecting");
      await sleep(retryMs, signal);
    }
  }

  return { makeParser, follow };
})();
