// Package web serves LastMile's browser app: the files built from web/src
// into web/dist (committed, embedded here, so the binary needs nothing
// else), with a strict Content-Security-Policy on the page.
package web

//go:generate go run ./internal/bundle/gen

import (
	"bytes"
	"embed"
	"fmt"
	"html"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"regexp"
	"strings"

	"github.com/go-chi/chi/v5"
)

//go:embed all:dist
var dist embed.FS

// DefaultTiles is the map's tile layer unless the operator names another:
// OpenStreetMap's standard tiles.
const DefaultTiles = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"

// AppPaths are the app's own pages; each is answered with the app, which
// then shows the right screen (so a reload or a shared link works).
var AppPaths = []string{"/", "/signin", "/signup", "/rider", "/driver", "/operator"}

// App is the web app, ready to serve.
type App struct {
	page   []byte // index.html with the tile layer filled in
	tiles  string // the CSP source of the tile server
	assets fs.FS
}

// New returns the app whose map loads tiles from the URL template tiles
// ({z}, {x}, {y}, optionally {s} for a subdomain and {r} for retina;
// empty means DefaultTiles).
// It returns an error naming the problem when tiles is not such a template.
func New(tiles string) (*App, error) {
	if tiles == "" {
		tiles = DefaultTiles
	}
	origin, err := TileOrigin(tiles)
	if err != nil {
		return nil, err
	}
	page, err := fs.ReadFile(dist, "dist/index.html")
	if err != nil {
		return nil, fmt.Errorf("web app not built (run go generate ./web): %w", err)
	}
	page = bytes.ReplaceAll(page, []byte("{{tiles}}"), []byte(html.EscapeString(tiles)))
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		return nil, err
	}
	return &App{page: page, assets: sub, tiles: origin}, nil
}

// CSP is the page's Content-Security-Policy: scripts, styles, workers and
// connections only from this server, images also from the tile server; no
// inline script or style, no plugins, no framing. host, when it is a plain
// host[:port], names the server's WebSocket too ('self' covers it in CSP
// level 3, older browsers need it spelled out).
func CSP(tileOrigin, host string) string {
	connect := "connect-src 'self'"
	if hostPattern.MatchString(host) {
		connect += " ws://" + host + " wss://" + host
	}
	return strings.Join([]string{
		"default-src 'self'",
		"script-src 'self'",
		"style-src 'self'",
		"img-src 'self' data: " + tileOrigin,
		connect,
		"worker-src 'self'",
		"manifest-src 'self'",
		"object-src 'none'",
		"base-uri 'none'",
		"form-action 'self'",
		"frame-ancestors 'none'",
	}, "; ")
}

// hostPattern is a host name or address with an optional port, and nothing
// that could end a CSP directive.
var hostPattern = regexp.MustCompile(`^[A-Za-z0-9.\-]+(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$`)

// TileOrigin returns the CSP source that covers a tile URL template:
// its scheme and host, with a {s} subdomain as a wildcard.
func TileOrigin(tiles string) (string, error) {
	for _, p := range []string{"{z}", "{x}", "{y}"} {
		if !strings.Contains(tiles, p) {
			return "", fmt.Errorf("--map-tiles %q: a tile URL template needs {z}, {x} and {y}", tiles)
		}
	}
	u, err := url.Parse(strings.NewReplacer("{s}", "s", "{z}", "0", "{x}", "0", "{y}", "0", "{r}", "").Replace(tiles))
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "", fmt.Errorf("--map-tiles %q: want an http or https URL such as %s", tiles, DefaultTiles)
	}
	host := u.Host
	if rest, ok := strings.CutPrefix(strings.SplitN(strings.SplitN(tiles, "://", 2)[1], "/", 2)[0], "{s}."); ok {
		host = "*." + rest
	}
	return u.Scheme + "://" + host, nil
}

// Routes mounts the app: its pages, its hashed assets and its service worker.
func (a *App) Routes(r chi.Router) {
	for _, p := range AppPaths {
		r.Get(p, a.index)
	}
	r.Get("/assets/{file}", a.asset) // flat: esbuild writes no subfolders
	r.Get("/sw.js", a.worker)
}

func (a *App) index(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", CSP(a.tiles, r.Host))
	h.Set("Cache-Control", "no-cache")
	// Tile servers may require to know which site asks (OpenStreetMap's
	// usage policy does): send them this origin, never the page's path.
	h.Set("Referrer-Policy", "strict-origin")
	w.Write(a.page)
}

// asset serves a file whose name carries its content hash: it never
// changes, so browsers may keep it for a year.
func (a *App) asset(w http.ResponseWriter, r *http.Request) {
	name := path.Clean(strings.TrimPrefix(r.URL.Path, "/"))
	if _, err := fs.Stat(a.assets, name); err != nil || !strings.HasPrefix(name, "assets/") {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	http.ServeFileFS(w, r, a.assets, name)
}

// worker serves the service worker; browsers check it for updates on
// every visit, so it must not be cached.
func (a *App) worker(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-cache")
	// A worker runs under its script's policy: same-origin only.
	w.Header().Set("Content-Security-Policy", "default-src 'self'")
	http.ServeFileFS(w, r, a.assets, "sw.js")
}
