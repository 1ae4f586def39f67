// Copies the few third-party files the app and its tests use out of
// node_modules, so the Go build and `go test ./...` never need npm.
// Run after changing a version in package.json: npm ci && npm run vendor
import { copyFileSync, mkdirSync } from "node:fs";

const copies = [
  ["node_modules/leaflet/dist/leaflet-src.esm.js", "vendor/leaflet/leaflet-src.esm.js"],
  ["node_modules/leaflet/dist/leaflet.css", "vendor/leaflet/leaflet.css"],
  ["node_modules/leaflet/LICENSE", "vendor/leaflet/LICENSE"],
  ["node_modules/leaflet/dist/images/marker-icon.png", "vendor/leaflet/images/marker-icon.png"],
  ["node_modules/leaflet/dist/images/marker-icon-2x.png", "vendor/leaflet/images/marker-icon-2x.png"],
  ["node_modules/leaflet/dist/images/marker-shadow.png", "vendor/leaflet/images/marker-shadow.png"],
  ["node_modules/leaflet/dist/images/layers.png", "vendor/leaflet/images/layers.png"],
  ["node_modules/leaflet/dist/images/layers-2x.png", "vendor/leaflet/images/layers-2x.png"],
  ["node_modules/axe-core/axe.min.js", "../cmd/lastmile/testdata/axe.min.js"],
  ["node_modules/axe-core/LICENSE", "../cmd/lastmile/testdata/axe-LICENSE"],
];
for (const [from, to] of copies) {
  mkdirSync(to.slice(0, to.lastIndexOf("/")), { recursive: true });
  copyFileSync(from, to);
}
