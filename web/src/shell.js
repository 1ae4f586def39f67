// What every role's screen shares: a map beside a panel, the station
// catalog kept fresh, and a log of the live updates received.
import { all } from "./api.js";
import { fmtTime, h } from "./dom.js";
import { makeMap } from "./map.js";

export function layout(title) {
  const mapEl = h("div", { class: "map", id: "map" });
  const panel = h("div", { class: "panel" });
  const logList = h("ol", { class: "log", id: "activity", "aria-label": "Live updates received" });
  const el = h("div", { class: "screen" },
    h("h1", { class: "visually-hidden" }, title),
    mapEl,
    h("div", { class: "side" }, panel,
      h("details", { class: "activity" }, h("summary", {}, "Live updates"), logList)));
  let map = null;
  return {
    el, panel, mapEl,
    // map is created once the element is in the page (Leaflet measures it).
    map() {
      if (!map) map = makeMap(mapEl, title + " map");
      return map;
    },
    log(e) {
      if (!e.seq) return; // driver.location: once a second, not worth a line
      const item = h("li", { "data-seq": e.seq || "", "data-kind": e.kind }, `${e.seq ? "#" + e.seq + " " : ""}${fmtTime(e.at || Date.now())} ${e.kind}`);
      logList.prepend(item);
      while (logList.children.length > 200) logList.lastChild.remove();
    },
  };
}

// Stations keeps the catalog and reloads it every few seconds, so an
// operator's edit reaches open pages; onChange runs when it changed.
export class Stations {
  constructor(onChange, every = 5000) {
    this.list = [];
    this.byId = new Map();
    this.onChange = onChange;
    this.every = every;
    this.sig = "";
    this.timer = 0;
  }

  async load() {
    try {
      const list = await all("/stations", "stations");
      const sig = JSON.stringify(list);
      if (sig !== this.sig) {
        this.sig = sig;
        this.list = list;
        this.byId = new Map(list.map((s) => [s.id, s]));
        this.onChange(list);
      }
    } catch {
      // Offline: keep what we have; the next round tries again.
    }
  }

  start() {
    const tick = async () => {
      await this.load();
      this.timer = setTimeout(tick, this.every);
    };
    tick();
  }

  stop() {
    clearTimeout(this.timer);
  }

  name(id) {
    const s = this.byId.get(id);
    return s ? s.name : id;
  }

  area(id) {
    for (const s of this.list) for (const a of s.areas || []) if (a.id === id) return a;
    return null;
  }

  areaName(id) {
    const a = this.area(id);
    return a ? a.name : id;
  }
}
