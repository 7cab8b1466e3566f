// Server-sent events over fetch(): EventSource cannot send an Authorization header, so the studio reads the
// stream itself and parses the text/event-stream format (https://html.spec.whatwg.org/#event-stream-interpretation).

import { ApiError, problemOf } from "./api.js";

/** Incremental text/event-stream parser: feed() it decoded text, it calls onEvent({event, id, data}). */
export class SseParser {
  constructor(onEvent) {
    this.onEvent = onEvent;
    this.buffer = "";
    this.reset();
    this.lastEventId = "";
    this.retryMs = null;
  }

  reset() {
    this.eventType = "";
    this.data = [];
    this.sawData = false;
  }

  feed(text) {
    this.buffer += text;
    // A trailing "\r" may be the first half of "\r\n": keep it until the next chunk says.
    const keep = this.buffer.endsWith("\r") ? 1 : 0;
    const usable = this.buffer.slice(0, this.buffer.length - keep);
    const lines = usable.split(/\r\n|\r|\n/);
    const rest = lines.pop(); // the unfinished last line (empty when the text ended with a newline)
    this.buffer = rest + this.buffer.slice(this.buffer.length - keep);
    for (const line of lines) this.line(line);
  }

  /** The stream ended: a held-back "\r" was a line end after all (an unfinished event is dropped, per spec). */
  end() {
    if (this.buffer.endsWith("\r")) {
      this.buffer = this.buffer.slice(0, -1);
      this.line(this.buffer);
    }
    this.buffer = "";
    this.reset();
  }

  line(line) {
    if (line === "") {
      this.dispatch();
      return;
    }
    if (line.startsWith(":")) return; // a comment: the server's keep-alive ping
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    switch (field) {
      case "event":
        this.eventType = value;
        break;
      case "data":
        this.data.push(value);
        this.sawData = true;
        break;
      case "id":
        if (!value.includes("\0")) this.lastEventId = value;
        break;
      case "retry":
        if (/^\d+$/.test(value)) this.retryMs = Number(value);
        break;
      default:
        break; // unknown fields are ignored
    }
  }

  dispatch() {
    if (this.sawData) {
      this.onEvent({ event: this.eventType || "message", id: this.lastEventId, data: this.data.join("\n") });
    }
    this.reset();
  }
}

const sleep = (ms, signal) =>
  new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener(
      "abort",
      () => {
        clearTimeout(timer);
        resolve();
      },
      { once: true },
    );
  });

/**
 * Follows an event stream until isDone() turns true after an event, or signal aborts. A dropped stream is
 * reopened with Last-Event-ID (the last id seen) after a short, growing backoff. A 4xx answer other than 429
 * is final and rejects with ApiError. onState("connected" | "reconnecting") reports the connection.
 */
export async function followEvents(url, { headers, onEvent, isDone, signal, onState = () => {} }) {
  let lastEventId = "";
  let failures = 0;
  let retryMs = null; // the server's "retry:" advice outlives the connection that carried it
  while (!signal?.aborted) {
    const parser = new SseParser((ev) => {
      lastEventId = ev.id || lastEventId;
      failures = 0; // the stream works: the next drop starts the backoff afresh
      onEvent(ev);
    });
    parser.lastEventId = lastEventId;
    parser.retryMs = retryMs;
    try {
      const h = { ...headers(), Accept: "text/event-stream" };
      if (lastEventId) h["Last-Event-ID"] = lastEventId;
      const response = await fetch(url, { headers: h, signal, cache: "no-store" });
      if (!response.ok) {
        const problem = await problemOf(response);
        if (response.status >= 400 && response.status < 500 && response.status !== 429) {
          throw new ApiError(problem, response.status);
        }
        throw new Error(`stream answered ${response.status}`);
      }
      onState("connected");
      const reader = response.body.getReader();
      const decoder = new TextDecoder("utf-8");
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        parser.feed(decoder.decode(value, { stream: true }));
        if (isDone()) {
          reader.cancel().catch(() => {});
          return;
        }
      }
      parser.feed(decoder.decode());
      parser.end();
      if (isDone()) return;
    } catch (err) {
      if (signal?.aborted || err.name === "AbortError") return;
      if (err instanceof ApiError) throw err;
    }
    if (isDone()) return;
    retryMs = parser.retryMs;
    failures += 1;
    onState("reconnecting");
    const base = retryMs ?? 500;
    await sleep(Math.min(base * 2 ** Math.min(failures - 1, 5), 10000) + Math.random() * 250, signal);
  }
}
