// The rider's screen: pick a station (map or searchable list, nearest first
// when the browser gives a position), a destination and a time; then follow
// the ride live: waiting, matched (driver, car, ETA, the car on the map),
// arrived, on board, dropped off.
import { api, uuid } from "./api.js";
import { clearErrors, distance, field, fmtDateTime, fmtDistance, fmtTime, h, replace, showErrors } from "./dom.js";
import { carMarker, L, stationLayer } from "./map.js";
import { offerPush } from "./push.js";
import { layout, Stations } from "./shell.js";

const OPEN = ["waiting", "matched", "picked_up"];

function localInput(d) {
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

export function riderScreen({ user, live }) {
  const ui = layout("Ride");
  const state = { selected: null, here: null, req: null, trip: null, match: null, driverPos: null, history: [], next: "" };
  let stationsDrawn = null;
  let car = null;
  const stations = new Stations(() => {
    drawStations();
    renderPicker();
    renderRide();
  });

  // ---- the request form
  const search = h("input", { type: "search", name: "station-search", placeholder: "Search stations", autocomplete: "off" });
  const list = h("ul", { class: "pick-list", id: "station-list", "aria-label": "Stations" });
  const nearBtn = h("button", { type: "button", class: "link", id: "nearest", onclick: () => locate(true) }, "Nearest to me");
  const chosen = h("p", { class: "chosen", id: "chosen-station", "aria-live": "polite" }, "No station chosen yet.");
  const area = h("select", { name: "destination_area_id" }, h("option", { value: "" }, "Choose a station first"));
  const arrival = h("input", { type: "datetime-local", name: "arrival_time", value: localInput(new Date(Date.now() + 10 * 60000)) });
  const party = h("select", { name: "party_size" }, [1, 2, 3, 4].map((n) => h("option", { value: String(n) }, String(n))));
  const submit = h("button", { type: "submit", class: "primary", id: "request-ride" }, "Request ride");
  const form = h("form", { class: "card", id: "request-form", novalidate: true },
    h("h2", {}, "Request a ride"),
    h("div", { class: "field" }, h("label", { for: "station-search" }, "Station"),
      h("div", { class: "row" }, search, nearBtn), list, chosen,
      h("p", { class: "field-error", id: "station_id-error", "data-error-for": "station_id", role: "alert" })),
    field("Going to", area),
    field("I reach the station at", arrival, "Default: in 10 minutes."),
    field("Party size", party),
    h("p", { class: "form-error", role: "alert" }),
    submit);
  search.id = "station-search";
  search.addEventListener("input", renderPicker);
  form.addEventListener("submit", request);

  const rideCard = h("section", { class: "card ride", id: "ride" });
  // Screen readers hear each change of status once, not every car move.
  const announce = h("p", { class: "visually-hidden", role: "status", id: "ride-announce" });
  let shownKey = "";
  const historyList = h("ul", { class: "history", id: "history" });
  const moreBtn = h("button", { type: "button", class: "link", hidden: true, onclick: () => loadHistory(true) }, "Show more");
  const historyCard = h("section", { class: "card" }, h("h2", {}, "Past rides"), historyList, moreBtn);
  replace(ui.panel, announce, rideCard, form, historyCard);

  function pick(s) {
    state.selected = s.id;
    renderPicker();
    drawStations();
    const areas = s.areas || [];
    replace(area, areas.length ? areas.map((a) => h("option", { value: a.id }, a.name)) : h("option", { value: "" }, "No destinations from here"));
    chosen.textContent = "Station: " + s.name;
  }

  let pickerKey = "";
  function renderPicker() {
    const q = search.value.trim().toLowerCase();
    const key = JSON.stringify([q, state.selected, state.here, stations.sig.length, stations.list.length]);
    if (key === pickerKey) return; // unchanged: keep focus where it is
    pickerKey = key;
    let items = stations.list.filter((s) => !q || s.name.toLowerCase().includes(q) || s.id.includes(q));
    if (state.here) items = items.map((s) => ({ s, d: distance(state.here, s) })).sort((a, b) => a.d - b.d).map((x) => x.s);
    replace(list, items.slice(0, 50).map((s) => h("li", {},
      h("button", { type: "button", class: "pick", "aria-pressed": String(state.selected === s.id), "data-station": s.id, onclick: () => pick(s) },
        s.name, state.here ? h("span", { class: "muted" }, " · " + fmtDistance(distance(state.here, s))) : null))));
    if (state.selected && !stations.byId.has(state.selected)) {
      state.selected = null;
      chosen.textContent = "No station chosen yet.";
    }
  }

  function drawStations() {
    if (!stationsDrawn) return;
    stationsDrawn.draw(stations.list, { selected: [state.selected, state.req && OPEN.includes(state.req.status) ? state.req.station_id : null].filter(Boolean) });
  }

  function locate(ask) {
    if (!navigator.geolocation) return;
    const got = (p) => {
      state.here = { lat: p.coords.latitude, lng: p.coords.longitude };
      renderPicker();
    };
    if (ask) {
      navigator.geolocation.getCurrentPosition(got, () => {
        chosen.textContent = "Your position is not available; pick a station from the list or the map.";
      }, { timeout: 10000, maximumAge: 60000 });
    } else if (navigator.permissions) {
      navigator.permissions.query({ name: "geolocation" }).then((p) => {
        if (p.state === "granted") navigator.geolocation.getCurrentPosition(got, () => {}, { timeout: 10000, maximumAge: 60000 });
      }).catch(() => {});
    }
  }

  async function request(e) {
    e.preventDefault();
    clearErrors(form);
    const fields = {};
    if (!state.selected) fields.station_id = "Choose a station on the map or in the list.";
    if (!area.value) fields.destination_area_id = "Choose where you are going.";
    const when = new Date(arrival.value);
    if (!arrival.value || isNaN(when)) fields.arrival_time = "Enter when you reach the station.";
    if (Object.keys(fields).length) return showErrors(form, { fields, status: 422, message: "" });
    submit.disabled = true;
    try {
      await api("POST", "/ride-requests", {
        station_id: state.selected, destination_area_id: area.value,
        arrival_time: when.toISOString(), party_size: Number(party.value),
      }, { idempotencyKey: uuid() });
      sessionStorage.removeItem("lastmile.dismissed");
      await refresh();
      offerPush();
    } catch (err) {
      showErrors(form, err);
    } finally {
      submit.disabled = false;
    }
  }

  // ---- the ride
  async function refresh() {
    try {
      const page = await api("GET", "/ride-requests?limit=1");
      state.req = (page.ride_requests || [])[0] || null;
      state.trip = null;
      if (state.req && state.req.trip_id) {
        state.trip = await api("GET", "/trips/" + state.req.trip_id);
        if (state.trip.driver_position) state.driverPos = state.trip.driver_position;
        const cached = localStorage.getItem("lastmile.match." + state.req.id);
        state.match = cached ? JSON.parse(cached) : null;
      }
    } catch {
      // Offline; the socket's reconnect refreshes again.
    }
    renderRide();
    drawStations();
    loadHistory(false);
  }

  function rideStatus() {
    const r = state.req, t = state.trip;
    if (!r) return "none";
    if (r.status === "matched" && t && t.arrived_at) return "arrived";
    if (r.status === "dropped_off") return "completed";
    return r.status;
  }

  function renderRide() {
    const r = state.req;
    const dismissed = sessionStorage.getItem("lastmile.dismissed");
    const open = r && OPEN.includes(r.status);
    form.hidden = !!open || (r && !open && dismissed !== r.id);
    if (!r || (!open && dismissed === r.id)) {
      rideCard.hidden = true;
      rideCard.dataset.status = "none";
      showCar(false);
      return;
    }
    rideCard.hidden = false;
    const st = rideStatus();
    const key = JSON.stringify([r, st, state.match, state.trip && state.trip.status, stations.sig.length, !!state.driverPos]);
    showCar(["matched", "arrived", "picked_up"].includes(st) && state.driverPos);
    const dist = rideCard.querySelector("#driver-distance");
    if (key === shownKey) {
      // Only the car moved: update its distance, keep focus and the rest.
      if (dist) dist.textContent = distanceText();
      return;
    }
    shownKey = key;
    if (rideCard.dataset.status !== st) announce.textContent = "";
    rideCard.dataset.status = st;
    const from = stations.name(r.station_id), to = stations.areaName(r.destination_area_id);
    const m = state.match;
    const lines = [];
    const headline = {
      waiting: "Waiting for a driver",
      matched: "Matched with a driver",
      arrived: "Your driver has arrived",
      picked_up: state.trip && state.trip.status === "active" ? "On the way" : "On board",
      completed: "Trip completed",
      cancelled: "Ride cancelled",
      expired: "Request expired",
      no_show: "Marked as a no-show",
    }[st] || st;
    lines.push(h("p", {}, `${from} → ${to}, party of ${r.party_size}, at the station by ${fmtTime(r.arrival_time)}.`));
    if (m && ["matched", "arrived", "picked_up"].includes(st)) {
      lines.push(h("p", { class: "driver", id: "driver-name" }, `Driver: ${m.driver ? m.driver.name : "—"}${m.vehicle ? " · " + m.vehicle : ""}`));
      if (st === "matched" && m.eta) lines.push(h("p", {}, "Expected at the station around " + fmtTime(m.eta) + "."));
    }
    if (st === "matched" && state.driverPos) lines.push(h("p", { id: "driver-distance" }, distanceText()));
    if (st === "arrived") lines.push(h("p", {}, `Meet your driver at ${from}.`));
    if (st === "waiting") lines.push(h("p", { class: "muted" }, "We match you when a driver heading your way comes near the station."));
    if (st === "completed") lines.push(h("p", {}, `You were dropped off near ${to}. Thanks for riding!`));
    if (st === "expired") lines.push(h("p", {}, "No driver came in time. Request again, perhaps with a later time or a nearby station."));
    if (st === "cancelled") lines.push(h("p", {}, "This ride was cancelled. You can request another."));
    if (st === "no_show") lines.push(h("p", {}, "The driver waited and could not find you. You can request another ride."));
    const actions = [];
    if (["waiting", "matched", "arrived"].includes(st)) {
      actions.push(h("button", { type: "button", class: "danger", id: "cancel-ride", onclick: cancel }, "Cancel ride"));
    } else if (!open) {
      actions.push(h("button", { type: "button", class: "primary", id: "new-ride", onclick: () => { sessionStorage.setItem("lastmile.dismissed", r.id); renderRide(); } }, "Request another ride"));
    }
    replace(rideCard, h("h2", { id: "ride-status" }, headline), lines, h("p", { class: "form-error", role: "alert", id: "ride-error" }), h("div", { class: "actions" }, actions));
    if (announce.textContent !== headline) announce.textContent = headline;
  }

  function distanceText() {
    const s = state.req && stations.byId.get(state.req.station_id);
    if (!s || !state.driverPos) return "";
    return `Your driver is ${fmtDistance(distance(state.driverPos, s))} from ${s.name}.`;
  }

  function showCar(on) {
    if (!car) return;
    const map = ui.map();
    if (on && state.driverPos) {
      car.setLatLng([state.driverPos.lat, state.driverPos.lng]);
      if (!map.hasLayer(car)) car.addTo(map);
    } else if (map.hasLayer(car)) {
      car.remove();
    }
  }

  async function cancel() {
    const err = rideCard.querySelector("#ride-error");
    try {
      await api("POST", `/ride-requests/${state.req.id}/cancel`);
      await refresh();
    } catch (e) {
      err.textContent = e.status === 409 ? "Too late to cancel: " + e.message : e.message;
    }
  }

  async function loadHistory(more) {
    try {
      const page = await api("GET", "/ride-requests?limit=10" + (more && state.next ? "&cursor=" + encodeURIComponent(state.next) : ""));
      state.history = more ? state.history.concat(page.ride_requests) : page.ride_requests;
      state.next = page.next_cursor || "";
    } catch {
      return;
    }
    replace(historyList, state.history.length ? state.history.map((r) => h("li", {},
      `${fmtDateTime(r.created_at)} · ${stations.name(r.station_id)} → ${stations.areaName(r.destination_area_id)} · `,
      h("span", { class: "badge " + r.status }, r.status.replace("_", " ")))) : h("li", { class: "muted" }, "No rides yet."));
    moreBtn.hidden = !state.next;
  }

  return {
    el: ui.el,
    mounted() {
      const map = ui.map();
      stationsDrawn = stationLayer(map, pick);
      car = carMarker(map, "Your driver");
      stations.start();
      locate(false);
      refresh();
    },
    onOnline: refresh,
    refresh,
    onEvent(e) {
      ui.log(e);
      const d = e.data || {};
      if (e.kind === "driver.location") {
        state.driverPos = { lat: d.lat, lng: d.lng };
        renderRide();
        return;
      }
      if (e.kind === "ride.matched" && d.ride_request_id) {
        localStorage.setItem("lastmile.match." + d.ride_request_id, JSON.stringify({ driver: d.driver, vehicle: d.vehicle, eta: d.eta, station_id: d.station_id }));
      }
      clearTimeout(this.t);
      this.t = setTimeout(refresh, 100);
    },
    stop() {
      stations.stop();
    },
  };
}


