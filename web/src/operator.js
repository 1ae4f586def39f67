// The operator's screen: a live map (stations and their trigger radius,
// online drivers, waiting riders, trips), live counters, station and area
// management, and GTFS import.
import { api, uuid } from "./api.js";
import { clearErrors, field, fmtTime, h, replace, showErrors } from "./dom.js";
import { L, stationLayer, text } from "./map.js";
import { layout, Stations } from "./shell.js";

const POLL = 3000;

export function operatorScreen() {
  const ui = layout("Operations");
  const state = { stats: null, positions: [], trips: [], editing: null };
  let drawn = null, drivers = null, timer = 0;
  const stations = new Stations(() => {
    draw();
    renderStations();
  });

  // ---- counters
  const counters = h("dl", { class: "counters", id: "counters" });
  function counter(key, label, value) {
    return h("div", { class: "counter", "data-counter": key }, h("dt", {}, label), h("dd", {}, value));
  }
  function renderCounters() {
    const s = state.stats || {};
    const wait = s.median_wait_seconds == null ? "—" : s.median_wait_seconds < 90 ? Math.round(s.median_wait_seconds) + " s" : Math.round(s.median_wait_seconds / 60) + " min";
    replace(counters,
      counter("drivers_online", "Drivers online", state.positions.filter((p) => p.online).length),
      counter("riders_waiting", "Riders waiting", s.waiting_riders ?? "—"),
      counter("matched_last_hour", "Matches, last hour", s.matched_last_hour ?? "—"),
      counter("median_wait", "Median wait to match", wait),
      counter("expired_today", "Expired today", s.expired_today ?? "—"));
  }

  // ---- trips
  const tripsList = h("ul", { class: "trips", id: "op-trips" });
  function renderTrips() {
    replace(tripsList, state.trips.length ? state.trips.map((t) => h("li", { "data-trip": t.id, "data-status": t.status },
      `${fmtTime(t.created_at)} · ${stations.name(t.station_id)} → ${stations.areaName(t.destination_area_id)} · ${t.riders.length} rider(s) · `,
      h("span", { class: "badge " + t.status }, t.status))) : h("li", { class: "muted" }, "No trips yet."));
  }

  // ---- stations and areas
  const stationsTable = h("tbody");
  const form = stationForm();
  const areaBox = h("div", { id: "areas" });
  const importFile = h("input", { type: "file", name: "feed", accept: ".zip,.txt,application/zip,text/plain" });
  const importOut = h("p", { role: "status", id: "import-result" });
  const importForm = h("form", { class: "card", id: "import-form", novalidate: true },
    h("h2", {}, "Import stations from GTFS"),
    field("GTFS feed (.zip or stops.txt)", importFile),
    h("p", { class: "form-error", role: "alert" }), importOut,
    h("button", { type: "submit" }, "Import"));
  importForm.addEventListener("submit", importFeed);

  replace(ui.panel,
    h("section", { class: "card" }, h("h2", {}, "Right now"), counters,
      h("p", { class: "legend" }, h("span", { class: "dot free" }), "driver ", h("span", { class: "dot approaching" }), "approaching a station ",
        h("span", { class: "dot busy" }), "on a trip · stations show riders waiting")),
    h("section", { class: "card" }, h("h2", {}, "Recent trips"), tripsList),
    h("section", { class: "card" }, h("h2", {}, "Stations"),
      h("p", { class: "form-error", role: "alert", id: "stations-error" }),
      h("div", { class: "table-wrap" }, h("table", { class: "stations" },
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Station"), h("th", { scope: "col" }, "Waiting"), h("th", { scope: "col" }, "Radius"), h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, "Actions")))),
        stationsTable))),
    form.el, areaBox, importForm);

  function waitingAt(id) {
    const w = ((state.stats && state.stats.waiting_by_station) || []).find((x) => x.station_id === id);
    return w ? w.riders : 0;
  }

  let shown = "";
  function renderStations() {
    const sig = stations.sig + JSON.stringify(state.stats && state.stats.waiting_by_station) + state.confirming + state.editing;
    if (sig === shown) return;
    shown = sig;
    replace(stationsTable, stations.list.map((s) => h("tr", { "data-station": s.id },
      h("th", { scope: "row" }, s.name, h("span", { class: "muted" }, " " + s.id)),
      h("td", {}, String(waitingAt(s.id))),
      h("td", {}, s.radius_m + " m"),
      h("td", { class: "actions" },
        h("button", { type: "button", class: "link", "aria-label": "Edit " + s.name, onclick: () => edit(s) }, "Edit"),
        h("button", { type: "button", class: "link danger", "data-delete": s.id, "aria-label": (state.confirming === s.id ? "Confirm delete of " : "Delete ") + s.name, onclick: () => remove(s) }, state.confirming === s.id ? "Confirm delete" : "Delete")))));
    renderAreas();
  }

  function draw() {
    if (!drawn) return;
    drawn.draw(stations.list, {
      label: (s) => `${s.name} · ${waitingAt(s.id)} waiting`,
      badge: (s) => (waitingAt(s.id) ? `${waitingAt(s.id)} waiting` : ""),
    });
    drivers.clearLayers();
    const onTrip = new Set(state.trips.filter((t) => t.status === "scheduled" || t.status === "active").map((t) => t.route_id));
    for (const p of state.positions) {
      if (!p.online) continue;
      const busy = p.route_id && onTrip.has(p.route_id);
      const [color, what] = busy ? ["#7c3aed", "Driver on a trip"] : p.approaching_station_id ? ["#d97706", "Driver approaching " + stations.name(p.approaching_station_id)] : ["#059669", "Driver"];
      L.circleMarker([p.lat, p.lng], { radius: 8, color: "#fff", weight: 2, fillColor: color, fillOpacity: 1 }).bindTooltip(text(what)).addTo(drivers);
    }
  }

  function stationForm() {
    const id = h("input", { name: "id", autocomplete: "off" });
    const name = h("input", { name: "name", autocomplete: "off" });
    const lines = h("input", { name: "lines", autocomplete: "off" });
    const lat = h("input", { name: "lat", inputmode: "decimal", autocomplete: "off" });
    const lng = h("input", { name: "lng", inputmode: "decimal", autocomplete: "off" });
    const radius = h("input", { name: "radius_m", inputmode: "numeric", autocomplete: "off" });
    const title = h("h2", {}, "New station");
    const save = h("button", { type: "submit", class: "primary" }, "Create station");
    const cancel = h("button", { type: "button", hidden: true, onclick: () => edit(null) }, "Cancel edit");
    const el = h("form", { class: "card", id: "station-form", novalidate: true }, title,
      field("Id (a slug, e.g. silk-board)", id), field("Name", name), field("Lines (comma-separated)", lines),
      h("div", { class: "row" }, field("Latitude", lat), field("Longitude", lng)),
      field("Trigger radius (m)", radius),
      h("p", { class: "form-error", role: "alert" }), h("div", { class: "actions" }, save, cancel));
    el.addEventListener("submit", async (e) => {
      e.preventDefault();
      clearErrors(el);
      const num = (v) => (v.trim() === "" ? undefined : Number(v));
      const body = { name: name.value.trim(), lines: lines.value.split(",").map((x) => x.trim()).filter(Boolean), lat: num(lat.value), lng: num(lng.value) };
      if (radius.value.trim()) body.radius_m = num(radius.value);
      try {
        if (state.editing) {
          await api("PATCH", "/stations/" + state.editing, body);
        } else {
          await api("POST", "/stations", { id: id.value.trim(), ...body }, { idempotencyKey: uuid() });
        }
        edit(null);
        await stations.load();
      } catch (err) {
        showErrors(el, err);
      }
    });
    return {
      el,
      fill(s) {
        clearErrors(el);
        title.textContent = s ? "Edit " + s.name : "New station";
        save.textContent = s ? "Save station" : "Create station";
        cancel.hidden = !s;
        id.value = s ? s.id : "";
        id.disabled = !!s;
        name.value = s ? s.name : "";
        lines.value = s ? (s.lines || []).join(", ") : "";
        lat.value = s ? s.lat : "";
        lng.value = s ? s.lng : "";
        radius.value = s ? s.radius_m : "";
      },
    };
  }

  function edit(s) {
    state.editing = s ? s.id : null;
    form.fill(s);
    renderAreas();
    if (s) form.el.querySelector('[name="name"]').focus();
  }

  function explain409(err, what) {
    return err.status === 409 ? `${what} cannot be deleted: ${err.message} Finish or cancel the routes and requests that use it first, or edit it instead.` : err.message;
  }

  async function remove(s) {
    const out = document.getElementById("stations-error");
    out.textContent = "";
    if (state.confirming !== s.id) {
      state.confirming = s.id; // a second press deletes
      return renderStations();
    }
    state.confirming = null;
    try {
      await api("DELETE", "/stations/" + s.id);
      if (state.editing === s.id) edit(null);
      await stations.load();
    } catch (err) {
      out.textContent = explain409(err, s.name);
    }
  }

  function renderAreas() {
    const s = state.editing && stations.byId.get(state.editing);
    if (!s) return replace(areaBox);
    const aid = h("input", { name: "id", autocomplete: "off" });
    const aname = h("input", { name: "name", autocomplete: "off" });
    const alat = h("input", { name: "lat", inputmode: "decimal", autocomplete: "off" });
    const alng = h("input", { name: "lng", inputmode: "decimal", autocomplete: "off" });
    const add = h("form", { novalidate: true }, h("h3", {}, "Add an area"),
      field("Id", aid), field("Name", aname), h("div", { class: "row" }, field("Latitude", alat), field("Longitude", alng)),
      h("p", { class: "form-error", role: "alert" }), h("button", { type: "submit" }, "Add area"));
    add.addEventListener("submit", async (e) => {
      e.preventDefault();
      clearErrors(add);
      try {
        await api("POST", `/stations/${s.id}/areas`, { id: aid.value.trim(), name: aname.value.trim(), lat: Number(alat.value), lng: Number(alng.value) }, { idempotencyKey: uuid() });
        await stations.load();
      } catch (err) {
        showErrors(add, err);
      }
    });
    const msg = h("p", { class: "form-error", role: "alert" });
    replace(areaBox, h("section", { class: "card" }, h("h2", {}, "Areas of " + s.name),
      h("ul", {}, (s.areas || []).map((a) => h("li", {}, `${a.name} (${a.id}) `,
        h("button", { type: "button", class: "link danger", "aria-label": "Delete area " + a.name, onclick: async () => {
          msg.textContent = "";
          try {
            await api("DELETE", `/stations/${s.id}/areas/${a.id}`);
            await stations.load();
          } catch (err) {
            msg.textContent = explain409(err, a.name);
          }
        } }, "Delete")))),
      msg, add));
  }

  async function importFeed(e) {
    e.preventDefault();
    clearErrors(importForm);
    importOut.textContent = "";
    const f = importFile.files[0];
    if (!f) return showErrors(importForm, { fields: { feed: "Choose a GTFS .zip or stops.txt file." }, status: 422, message: "" });
    if (f.size > 1024 * 1024) {
      return showErrors(importForm, { fields: { feed: `${f.name} is ${(f.size / 1048576).toFixed(1)} MiB; uploads are limited to 1 MiB. Upload the feed's stops.txt alone, or run "lastmile stations import" on the server.` }, status: 422, message: "" });
    }
    try {
      const r = await api("POST", "/stations/import", f, { raw: true });
      importOut.textContent = `Imported ${r.stations} stations: ${r.created} new, ${r.updated} updated, ${r.unchanged} unchanged, ${r.ignored} other stops ignored.`;
      await stations.load();
    } catch (err) {
      importForm.querySelector(".form-error").textContent = err.message;
    }
  }

  // ---- live data
  async function poll() {
    try {
      const [stats, pos, trips] = await Promise.all([
        api("GET", "/ride-requests/stats"),
        api("GET", "/drivers/positions"),
        api("GET", "/trips?limit=15"),
      ]);
      state.stats = stats;
      state.positions = pos.positions || [];
      state.trips = trips.trips || [];
      renderCounters();
      renderTrips();
      renderStations();
      draw();
    } catch {
      // Offline: try again next round.
    }
  }

  renderCounters();
  return {
    el: ui.el,
    mounted() {
      const map = ui.map();
      drawn = stationLayer(map, (s) => edit(s));
      drivers = L.layerGroup().addTo(map);
      stations.start();
      const loop = async () => {
        await poll();
        timer = setTimeout(loop, POLL);
      };
      loop();
    },
    onOnline: poll,
    refresh: poll,
    onEvent(e) {
      ui.log(e);
    },
    stop() {
      clearTimeout(timer);
      stations.stop();
    },
  };
}
