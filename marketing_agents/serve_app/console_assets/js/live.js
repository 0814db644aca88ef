// The /ws event stream: the key goes as a subprotocol (never in the URL), pings are answered, and after
// a drop the stream resumes from the last event id, so that nothing is missed and nothing comes twice.

import { wsBase } from "./api.js";

const WANTED = ["leads", "handoffs", "reviews"];
const MAX_BACKOFF_MS = 30000;
const GOING_AWAY = 1001;  // the server's session limit: come back at once

export class LiveStream extends EventTarget {
  constructor(key) {
    super();
    this.key = key;
    this.topics = [...WANTED];
    this.lastEventId = null;
    this.backoffMs = 1000;
    this.socket = null;
    this.timer = null;
    this.stopped = false;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.socket) this.socket.close(1000, "signed out");
    this.socket = null;
  }

  state(text) {
    this.dispatchEvent(new CustomEvent("state", { detail: text }));
  }

  connect() {
    const params = new URLSearchParams({ topics: this.topics.join(",") });
    if (this.lastEventId) params.set("last_event_id", this.lastEventId);
    this.state("connecting…");
    const socket = new WebSocket(`${wsBase}/ws?${params}`, ["mas.v1", "mas.bearer." + this.key]);
    this.socket = socket;
    socket.addEventListener("message", (message) => this.receive(socket, JSON.parse(message.data)));
    socket.addEventListener("close", (closed) => this.closed(socket, closed));
  }

  receive(socket, frame) {
    if (frame.type === "ping") {
      socket.send(JSON.stringify({ action: "pong", n: frame.payload.n }));
    } else if (frame.type === "subscribed") {
      this.backoffMs = 1000;
      this.state(`live: ${frame.payload.topics.join(", ")}`);
    } else if (frame.type === "error") {
      // A gateway without a topic names it; the others stay subscribed, and reconnects leave it out.
      const unknown = frame.payload.topics || [];
      if (frame.payload.code === "unknown_topic") this.topics = this.topics.filter((t) => !unknown.includes(t));
      this.dispatchEvent(new CustomEvent("problem", { detail: frame.payload }));
    } else if (frame.id !== null && frame.id !== undefined) {
      this.lastEventId = frame.id;
      this.dispatchEvent(new CustomEvent("event", { detail: frame }));
    }
  }

  closed(socket, closed) {
    if (socket !== this.socket || this.stopped) return;
    const delay = closed.code === GOING_AWAY ? 0 : this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, MAX_BACKOFF_MS);
    this.state(`disconnected (${closed.code}${closed.reason ? ": " + closed.reason : ""}); reconnecting in ${Math.round(delay / 1000)} s`);
    this.timer = setTimeout(() => this.connect(), delay);
  }
}
