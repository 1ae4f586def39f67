// The one WebSocket per page: it reconnects by itself with exponential
// backoff and jitter, resumes after the last event seen (its seq is kept in
// localStorage, per user), and reports online/offline.
import { api, session } from "./api.js";

const MAX_DELAY = 5000;

export class Live {
  // onEvent gets every {type:"event"} message once, in order; onState gets
  // "online" | "offline" | "connecting"; onResync is called when the
  // server no longer has the events after our seq (reload state over REST);
  // onError gets the server's {type: "error", code, message} for a message
  // it refused (a fix it found implausible, say).
  constructor(userId, { onEvent, onState, onResync, onError }) {
    this.key = "lastmile.seq." + userId;
    this.onEvent = onEvent;
    this.onState = onState;
    this.onResync = onResync || (() => {});
    this.onError = onError || (() => {});
    this.ws = null;
    this.attempts = 0;
    this.timer = 0;
    this.stopped = false;
    this.resume = true;
    this.wake = () => this.reconnectNow();
    window.addEventListener("online", this.wake);
    document.addEventListener("visibilitychange", this.wake);
  }

  get seq() {
    return Number(localStorage.getItem(this.key) || 0);
  }

  set seq(n) {
    localStorage.setItem(this.key, String(n));
  }

  start() {
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    window.removeEventListener("online", this.wake);
    document.removeEventListener("visibilitychange", this.wake);
    if (this.ws) this.ws.close(1000, "bye");
  }

  // send sends a message if the socket is open and says whether it did.
  send(msg) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(msg));
    return true;
  }

  get online() {
    return !!this.ws && this.ws.readyState === WebSocket.OPEN;
  }

  reconnectNow() {
    if (this.stopped || document.visibilityState === "hidden") return;
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) return;
    clearTimeout(this.timer);
    this.attempts = 0;
    this.connect();
  }

  async connect() {
    if (this.stopped) return;
    const s = session();
    if (!s) return;
    this.onState("connecting");
    if (this.attempts > 0) {
      // Before opening another socket, ask whether the server is back and
      // still takes our token: a refused upgrade tells a page nothing.
      try {
        await api("GET", "/me");
      } catch (e) {
        if (e.status === 401) return; // api() has signed us out
        this.onState("offline");
        return this.retry();
      }
    }
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    let url = `${proto}//${location.host}/api/v1/ws?access_token=${encodeURIComponent(s.token)}`;
    if (this.resume) url += "&since=" + this.seq;
    const ws = new WebSocket(url);
    this.ws = ws;
    ws.onopen = () => {
      this.attempts = 0;
      this.resume = true;
      this.onState("online");
    };
    ws.onmessage = (m) => {
      let msg;
      try {
        msg = JSON.parse(m.data);
      } catch {
        return;
      }
      if (msg.type === "event") {
        if (msg.seq) {
          if (msg.seq <= this.seq) return; // already seen
          this.seq = msg.seq;
        }
        this.onEvent(msg);
      } else if (msg.type === "error" && msg.code === "since_too_old") {
        this.resume = false;
        this.onResync();
      } else if (msg.type === "error") {
        this.onError(msg); // a message of ours the server refused
      }
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.stopped) return;
      this.onState("offline");
      this.retry();
    };
  }

  retry() {
    clearTimeout(this.timer);
    const delay = Math.min(MAX_DELAY, 250 * 2 ** this.attempts) * (0.5 + Math.random() / 2);
    this.attempts++;
    this.timer = setTimeout(() => this.connect(), delay);
  }
}
