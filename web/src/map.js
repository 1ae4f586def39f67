// The map: Leaflet with the tile layer the server names, and markers whose
// icons are set explicitly (a bundler cannot find Leaflet's default ones).
// Everything on it also works with no tiles at all.
import * as L from "../vendor/leaflet/leaflet-src.esm.js";
import iconUrl from "../vendor/leaflet/images/marker-icon.png";
import iconRetinaUrl from "../vendor/leaflet/images/marker-icon-2x.png";
import shadowUrl from "../vendor/leaflet/images/marker-shadow.png";

export { L };

// text is a tooltip's content as a text node: Leaflet puts a string in as
// HTML, and station names come from operators and GTFS feeds.
export function text(s) {
  const el = document.createElement("span");
  el.textContent = s;
  return el;
}

const markerIcon = L.icon({
  iconUrl, iconRetinaUrl, shadowUrl,
  iconSize: [25, 41], iconAnchor: [12, 41], popupAnchor: [1, -34], tooltipAnchor: [16, -28], shadowSize: [41, 41],
});
L.Marker.prototype.options.icon = markerIcon;

export function makeMap(el, label) {
  el.setAttribute("role", "region");
  el.setAttribute("aria-label", label);
  const map = L.map(el, { zoomControl: true, attributionControl: true }).setView([12.9, 77.64], 12);
  const meta = document.querySelector('meta[name="lastmile-tiles"]');
  const tiles = meta && meta.content && !meta.content.startsWith("{{") ? meta.content : "https://tile.openstreetmap.org/{z}/{x}/{y}.png";
  L.tileLayer(tiles, {
    maxZoom: 19,
    attribution: '&copy; <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a> contributors',
  }).addTo(map);
  map.attributionControl.setPrefix('<a href="https://leafletjs.com">Leaflet</a>');
  return map;
}

// stationLayer draws stations with their trigger radius; onPick(station)
// runs when one is clicked. It returns {layer, draw(stations, opts)}.
export function stationLayer(map, onPick) {
  const layer = L.layerGroup().addTo(map);
  let fitted = false, bounds = null, moved = false;
  // Show every station until the person moves the map themselves; a
  // resized window (a phone turned, a panel opened) shows them all again.
  map.on("dragstart", () => (moved = true));
  map.getContainer().addEventListener("wheel", () => (moved = true), { passive: true });
  map.getContainer().addEventListener("keydown", () => (moved = true));
  map.zoomControl && map.zoomControl.getContainer().addEventListener("click", () => (moved = true));
  map.on("resize", () => {
    if (bounds && !moved) map.fitBounds(bounds, { padding: [20, 20], maxZoom: 14 });
  });
  return {
    layer,
    draw(stations, { selected = [], label, badge } = {}) {
      layer.clearLayers();
      for (const s of stations) {
        const on = selected.includes(s.id);
        L.circle([s.lat, s.lng], { radius: s.radius_m, color: on ? "#0b5fff" : "#6b7280", weight: 1, fillOpacity: on ? 0.15 : 0.05, interactive: false }).addTo(layer);
        const m = L.circleMarker([s.lat, s.lng], { radius: on ? 9 : 7, color: "#fff", weight: 2, fillColor: on ? "#0b5fff" : "#374151", fillOpacity: 1 })
          .bindTooltip(text(label ? label(s) : s.name))
          .addTo(layer);
        if (onPick) m.on("click", () => onPick(s));
        const b = badge && badge(s);
        if (b) L.tooltip({ permanent: true, direction: "right", offset: [8, 0], className: "badge-tip" }).setContent(text(b)).setLatLng([s.lat, s.lng]).addTo(layer);
      }
      if (stations.length) bounds = L.latLngBounds(stations.map((s) => [s.lat, s.lng]));
      if (!fitted && bounds) {
        map.fitBounds(bounds, { padding: [20, 20], maxZoom: 14 });
        fitted = true;
      }
    },
  };
}

// carMarker is a marker for a driver's car that moves smoothly.
export function carMarker(map, title) {
  return L.marker([0, 0], { title, alt: title, keyboard: false, zIndexOffset: 1000 });
}
