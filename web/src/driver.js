// The driver's screen: build a route by tapping stations, go online, share
// the phone's GPS or simulate the drive, and run each trip: arrived,
// picked up / no-show, start, dropped off.
import { api, uuid } from "./api.js";
import { clearErrors, distance, field, fmtTime, h, replace, showErrors } from "./dom.js";
import { carMarker, L, stationLayer } from "./map.js";
import { offerPush } from "./push.js";
import { layout, Stations } from "./shell.js";

const NO_SHOW_WAIT = 5 * 60000; // the server's default, if a trip lacks no_show_at

export function driverScreen({ user, live }) {
  const ui = layout("Drive");
  const state = { picked: [], route: null, trips: [], pos: null, feed: null };
  let drawn = null, car = null, line = null;
  const stations = new Stations(() => {
    draw();
    renderBuilder();
    renderRoute();
  });

  // ---- building a route
  const list = h("ul", { class: "pick-list", id: "route-stations", "aria-label": "Stations to add to the route" });
  const search = h("input", { type: "search", id: "route-search", placeholder: "Search stations", autocomplete: "off" });
  const chosen = h("ol", { class: "route-list", id: "route-order", "aria-label": "Your route, in order" });
  const area = h("select", { name: "destination_area_id" });
  const seats = h("select", { name: "seats" }, [1, 2, 3, 4, 5, 6].map((n) => h("option", { value: String(n) }, String(n))));
  seats.value = "3";
  const vehicle = h("input", { name: "vehicle", placeholder: "e.g. white Swift KA-01-AB-1234", autocomplete: "off" });
  const submit = h("button", { type: "submit", class: "primary", id: "go-online" }, "Go online");
  const builder = h("form", { class: "card", id: "route-form", novalidate: true },
    h("h2", {}, "Your route"),
    h("p", { class: "muted" }, "Tap the stations you pass, in order, on the map or in the list."),
    h("div", { class: "field" }, h("label", { for: "route-search" }, "Add a station"), search, list),
    chosen,
    h("p", { class: "field-error", id: "station_ids-error", "data-error-for": "station_ids", role: "alert" }),
    field("Heading to", area),
    field("Free seats", seats),
    field("Vehicle (optional)", vehicle),
    h("p", { class: "form-error", role: "alert" }),
    submit);
  search.addEventListener("input", renderBuilder);
  builder.addEventListener("submit", createRoute);

  const routeCard = h("section", { class: "card", id: "route" });
  const tripsEl = h("div", { id: "trips", "aria-live": "polite" });
  replace(ui.panel, builder, routeCard, tripsEl);

  function toggle(s) {
    if (state.route) return;
    const i = state.picked.indexOf(s.id);
    if (i >= 0) state.picked.splice(i, 1);
    else state.picked.push(s.id);
    renderBuilder();
    draw();
  }

  let builderKey = "";
  function renderBuilder() {
    builder.hidden = !!state.route;
    const q = search.value.trim().toLowerCase();
    const key = JSON.stringify([q, state.picked, stations.sig.length, stations.list.length]);
    if (key === builderKey) return; // unchanged: keep focus where it is
    builderKey = key;
    replace(list, stations.list.filter((s) => !q || s.name.toLowerCase().includes(q)).slice(0, 50).map((s) => h("li", {},
      h("button", { type: "button", class: "pick", "aria-pressed": String(state.picked.includes(s.id)), "data-station": s.id, onclick: () => toggle(s) }, s.name))));
    replace(chosen, state.picked.map((id, i) => h("li", {}, stations.name(id), " ",
      h("button", { type: "button", class: "link", "aria-label": "Remove " + stations.name(id), onclick: () => { state.picked.splice(i, 1); renderBuilder(); draw(); } }, "remove"))));
    const keep = area.value;
    const groups = stations.list.filter((s) => (s.areas || []).length).map((s) =>
      h("optgroup", { label: s.name }, s.areas.map((a) => h("option", { value: a.id }, a.name))));
    replace(area, h("option", { value: "" }, "Choose a destination"), groups);
    area.value = keep;
  }

  function draw() {
    if (!drawn) return;
    const ids = state.route ? state.route.station_ids : state.picked;
    drawn.draw(stations.list, { selected: ids, label: (s) => (ids.includes(s.id) ? `${ids.indexOf(s.id) + 1}. ` : "") + s.name });
    if (line) line.remove();
    const pts = ids.map((id) => stations.byId.get(id)).filter(Boolean).map((s) => [s.lat, s.lng]);
    if (pts.length > 1) line = L.polyline(pts, { color: "#0b5fff", weight: 3, opacity: 0.6, interactive: false }).addTo(ui.map());
  }

  async function createRoute(e) {
    e.preventDefault();
    clearErrors(builder);
    const fields = {};
    if (!state.picked.length) fields.station_ids = "Add at least one station.";
    if (!area.value) fields.destination_area_id = "Choose where you are heading.";
    if (Object.keys(fields).length) return showErrors(builder, { fields, status: 422, message: "" });
    submit.disabled = true;
    try {
      const body = { station_ids: state.picked, destination_area_id: area.value, seats: Number(seats.value) };
      if (vehicle.value.trim()) body.vehicle = vehicle.value.trim();
      state.route = await api("POST", "/routes", body, { idempotencyKey: uuid() });
      state.picked = [];
      render();
      offerPush();
    } catch (err) {
      showErrors(builder, err);
    } finally {
      submit.disabled = false;
    }
  }

  // ---- the active route, position feed and trips
  const speed = h("select", { name: "speed", id: "sim-speed" },
    [["10", "10 m/s (36 km/h)"], ["20", "20 m/s (72 km/h)"], ["40", "40 m/s (144 km/h, fast-forward)"]].map(([v, t]) => h("option", { value: v }, t)));
  speed.value = "20";
  const feedStatus = h("p", { id: "feed-status", role: "status" });
  // setFeed changes the status line only when its text changes, so screen
  // readers are not told the same thing every second.
  const setFeed = (text) => {
    if (feedStatus.textContent !== text) feedStatus.textContent = text;
  };

  let routeKey = "", tripsKey = "";
  function renderRoute() {
    const r = state.route;
    routeCard.hidden = !r;
    if (!r) return;
    const feeding = state.feed ? state.feed.kind : "";
    // Re-render only on a change, so focus and the speed stay put.
    const key = JSON.stringify([r, feeding, stations.sig.length]);
    if (key === routeKey) return;
    routeKey = key;
    replace(routeCard,
      h("h2", {}, "Online: your route"),
      h("ol", { class: "route-list" }, r.station_ids.map((id) => h("li", { class: (r.passed_station_ids || []).includes(id) ? "passed" : "" }, stations.name(id)))),
      h("p", {}, `To ${stations.areaName(r.destination_area_id)} · ${r.seats_free} of ${r.seats_total} seats free${r.vehicle ? " · " + r.vehicle : ""}`),
      h("div", { class: "actions" },
        h("button", { type: "button", id: "share-gps", "aria-pressed": String(feeding === "gps"), onclick: shareGPS }, feeding === "gps" ? "Stop sharing GPS" : "Share my GPS"),
        h("button", { type: "button", id: "simulate", "aria-pressed": String(feeding === "sim"), onclick: simulate }, feeding === "sim" ? "Stop simulation" : "Simulate drive")),
      field("Simulation speed", speed),
      feedStatus,
      h("p", { class: "form-error", role: "alert", id: "route-error" }),
      h("div", { class: "actions" },
        h("button", { type: "button", id: "finish-route", onclick: () => endRoute("complete") }, "Finish route"),
        h("button", { type: "button", class: "danger", id: "cancel-route", onclick: () => endRoute("cancel") }, "Cancel route")));
  }

  function renderTrips() {
    const now = Date.now();
    const key = JSON.stringify([state.trips, state.trips.map((t) => t.no_show_at && now >= new Date(t.no_show_at).getTime()), stations.sig.length]);
    if (key === tripsKey) return;
    tripsKey = key;
    replace(tripsEl, state.trips.map((t) => {
      const arrived = !!t.arrived_at;
      const sched = t.status === "scheduled";
      const matched = t.riders.filter((x) => x.status === "matched").length;
      const onBoard = t.riders.filter((x) => x.status === "picked_up").length;
      const noShowAt = t.no_show_at ? new Date(t.no_show_at).getTime() : arrived ? new Date(t.arrived_at).getTime() + NO_SHOW_WAIT : 0;
      const act = (label, id, path, enabled, cls) => h("button", { type: "button", class: cls || "", id: id || null, "data-action": path.split("/").pop(), disabled: !enabled, onclick: () => act2(t, path) }, label);
      return h("section", { class: "card trip", "data-trip": t.id, "data-status": t.status },
        h("h2", {}, `Trip at ${stations.name(t.station_id)}`),
        h("p", { class: "trip-status" }, { scheduled: arrived ? "At the station" : "Heading to the station", active: "Under way", completed: "Trip completed", cancelled: "Trip cancelled" }[t.status]),
        h("ul", { class: "riders" }, t.riders.map((x, i) => h("li", { "data-rider": x.rider_id },
          `Rider ${i + 1} · party of ${x.party_size} · ${x.status.replace("_", " ")} `,
          h("span", { class: "actions" },
            act("Picked up", "", `/riders/${x.rider_id}/picked-up`, sched && arrived && x.status === "matched", "primary"),
            act("No-show", "", `/riders/${x.rider_id}/no-show`, sched && arrived && x.status === "matched" && now >= noShowAt),
            act("Dropped off", "", `/riders/${x.rider_id}/dropped-off`, t.status === "active" && x.status === "picked_up", "primary"))))),
        sched && arrived && matched ? h("p", { class: "muted" }, "No-show possible from " + fmtTime(noShowAt) + ".") : null,
        h("p", { class: "form-error", role: "alert" }),
        h("div", { class: "actions" },
          act("Arrived", "arrived", "/arrived", sched && !arrived, "primary"),
          act("Start trip", "start-trip", "/start", sched && arrived && matched === 0 && onBoard > 0, "primary")));
    }));
  }

  async function act2(t, path) {
    const card = tripsEl.querySelector(`[data-trip="${t.id}"]`);
    try {
      const v = await api("POST", `/trips/${t.id}${path}`);
      state.trips = state.trips.map((x) => (x.id === v.id ? v : x));
      renderTrips();
      loadRoute();
    } catch (e) {
      if (card) card.querySelector(".form-error").textContent = e.message;
    }
  }

  async function endRoute(how) {
    try {
      await api("POST", `/routes/${state.route.id}/${how}`);
      stopFeed();
      state.route = null;
      await refresh();
    } catch (e) {
      routeCard.querySelector("#route-error").textContent = e.message;
    }
  }

  function sendFix(p, speedMps, heading) {
    state.pos = p;
    if (car) {
      car.setLatLng([p.lat, p.lng]);
      if (!ui.map().hasLayer(car)) car.addTo(ui.map());
    }
    const msg = { type: "location", lat: p.lat, lng: p.lng, at: new Date().toISOString() };
    if (speedMps != null) msg.speed_mps = speedMps;
    if (heading != null) msg.heading = heading;
    if (!live.send(msg)) setFeed("Offline: your position will be sent when the connection is back.");
  }

  function stopFeed() {
    if (!state.feed) return;
    state.feed.stop();
    state.feed = null;
    setFeed("");
  }

  function shareGPS() {
    if (state.feed && state.feed.kind === "gps") {
      stopFeed();
      return renderRoute();
    }
    stopFeed();
    if (!navigator.geolocation) {
      setFeed("This browser cannot share its position. Use Simulate drive instead.");
      return;
    }
    const id = navigator.geolocation.watchPosition(
      (p) => {
        sendFix({ lat: p.coords.latitude, lng: p.coords.longitude }, p.coords.speed, p.coords.heading);
        setFeed("Sharing your GPS.");
      },
      (err) => {
        stopFeed();
        setFeed(err.code === err.PERMISSION_DENIED
          ? "Location permission was refused. Allow location for this site in your browser's settings to share your GPS, or use Simulate drive."
          : "Your position is not available right now (" + err.message + "). Try again outdoors, or use Simulate drive.");
        renderRoute();
      },
      { enableHighAccuracy: true, maximumAge: 2000, timeout: 20000 });
    state.feed = { kind: "gps", stop: () => navigator.geolocation.clearWatch(id) };
    setFeed("Waiting for your position…");
    renderRoute();
  }

  // simulate drives the route: from 1 km before the first station, through
  // each station (stopping while a trip there has not started), to the
  // destination, one fix a second at the chosen speed.
  function simulate() {
    if (state.feed && state.feed.kind === "sim") {
      stopFeed();
      return renderRoute();
    }
    stopFeed();
    const r = state.route;
    const stops = r.station_ids.map((id) => stations.byId.get(id)).filter(Boolean);
    if (!stops.length) return;
    const dest = stations.area(r.destination_area_id);
    const first = stops[0], next = stops[1] || dest || { lat: first.lat + 0.01, lng: first.lng };
    const d = distance(first, next) || 1;
    const back = 1000 / d;
    const start = { lat: first.lat - (next.lat - first.lat) * back, lng: first.lng - (next.lng - first.lng) * back };
    const path = [{ ...start }, ...stops.map((s) => ({ lat: s.lat, lng: s.lng, station: s.id }))];
    if (dest) path.push({ lat: dest.lat, lng: dest.lng });
    let pos = { ...start }, leg = 1;
    const mps = Number(speed.value);
    const tick = () => {
      let left = mps;
      while (left > 0 && leg < path.length) {
        const target = path[leg];
        const prev = path[leg - 1];
        if (prev.station && holding(prev.station)) break;
        const rem = distance(pos, target);
        if (rem <= left) {
          pos = { lat: target.lat, lng: target.lng };
          left -= rem;
          leg++;
        } else {
          const f = left / rem;
          pos = { lat: pos.lat + (target.lat - pos.lat) * f, lng: pos.lng + (target.lng - pos.lng) * f };
          left = 0;
        }
      }
      const moving = left < mps;
      sendFix(pos, moving ? mps - left : 0, null);
      const at = path[leg - 1];
      setFeed(leg >= path.length ? "Simulation: arrived at the destination." :
        at.station && holding(at.station) ? `Simulation: waiting at ${stations.name(at.station)} until the trip there starts.` :
        `Simulation: driving at ${mps} m/s towards ${path[leg].station ? stations.name(path[leg].station) : "the destination"}.`);
    };
    tick();
    const id = setInterval(tick, 1000);
    state.feed = { kind: "sim", stop: () => clearInterval(id) };
    renderRoute();
  }

  // holding: the simulated car waits at a station while a trip there has
  // riders to pick up or is yet to start.
  function holding(stationId) {
    return state.trips.some((t) => t.station_id === stationId && t.status === "scheduled");
  }

  async function loadRoute() {
    try {
      state.route = await api("GET", "/routes/current");
    } catch (e) {
      if (e.status === 404) state.route = null;
    }
  }

  async function refresh() {
    await loadRoute();
    try {
      const page = await api("GET", "/trips?limit=20");
      const routeId = state.route && state.route.id;
      state.trips = (page.trips || []).filter((t) => t.route_id === routeId || t.status === "scheduled" || t.status === "active");
    } catch {
      // Offline; refreshed again on reconnect.
    }
    if (!state.route) stopFeed();
    render();
  }

  function render() {
    renderBuilder();
    renderRoute();
    renderTrips();
    draw();
  }

  const tick = setInterval(renderTrips, 5000); // no-show buttons enable with time

  return {
    el: ui.el,
    mounted() {
      const map = ui.map();
      drawn = stationLayer(map, toggle);
      car = carMarker(map, "You");
      stations.start();
      refresh();
    },
    onOnline: refresh,
    refresh,
    onError(m) {
      setFeed(`The server refused a position (${m.code}): ${m.message}`);
    },
    onEvent(e) {
      ui.log(e);
      if (e.kind === "trip.updated" || e.kind === "trip.assigned") {
        const t = e.data && e.data.trip;
        if (t) {
          const i = state.trips.findIndex((x) => x.id === t.id);
          if (i >= 0) state.trips[i] = t;
          else state.trips.unshift(t);
          renderTrips();
        }
      }
      clearTimeout(this.t);
      this.t = setTimeout(refresh, 150);
    },
    stop() {
      stopFeed();
      clearInterval(tick);
      stations.stop();
    },
  };
}
