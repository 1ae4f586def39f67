package web

import (
	"bytes"
	"compress/gzip"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
)

func serve(t *testing.T, tiles string) *httptest.Server {
	t.Helper()
	a, err := New(tiles)
	if err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	a.Routes(r)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// Every app path answers the page, with a CSP that allows no inline script
// or style and images only from here and the tile server, and the tile
// template handed to the app.
func TestPagesCarryTheAppAndItsCSP(t *testing.T) {
	srv := serve(t, "https://{s}.tiles.example.org/{z}/{x}/{y}.png?key=a&b")
	for _, path := range AppPaths {
		t.Run(path, func(t *testing.T) {
			resp, body := get(t, srv.URL+path)
			if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
				t.Fatalf("GET %s = %d %s", path, resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			csp := resp.Header.Get("Content-Security-Policy")
			for _, want := range []string{"script-src 'self';", "style-src 'self';", "img-src 'self' data: https://*.tiles.example.org;", "connect-src 'self' ws://127.0.0.1:", "frame-ancestors 'none'", "object-src 'none'"} {
				if !strings.Contains(csp, want) {
					t.Errorf("CSP %q lacks %q", csp, want)
				}
			}
			if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
				t.Errorf("CSP %q allows inline code", csp)
			}
			if !strings.Contains(body, `<meta name="lastmile-tiles" content="https://{s}.tiles.example.org/{z}/{x}/{y}.png?key=a&amp;b">`) {
				t.Errorf("the page does not carry the tile template (escaped):\n%s", body)
			}
			if regexp.MustCompile(`<script>|<script [^>]*>[^<]|<style|style=|onclick=`).MatchString(body) {
				t.Errorf("the page has inline script or style:\n%s", body)
			}
			if cc := resp.Header.Get("Cache-Control"); cc != "no-cache" {
				t.Errorf("page Cache-Control = %q, want no-cache", cc)
			}
			if rp := resp.Header.Get("Referrer-Policy"); rp != "strict-origin" {
				t.Errorf("page Referrer-Policy = %q, want strict-origin (tile servers see the site, not the path)", rp)
			}
		})
	}
}

// The page's script, stylesheet and images are named by their content and
// cached for a year; the service worker is always revalidated; unknown
// files are 404.
func TestAssetsAreCachedByName(t *testing.T) {
	srv := serve(t, "")
	_, page := get(t, srv.URL+"/")
	refs := regexp.MustCompile(`/assets/[A-Za-z0-9._-]+`).FindAllString(page, -1)
	if len(refs) != 2 {
		t.Fatalf("page refers to %v, want a script and a stylesheet", refs)
	}
	for _, ref := range refs {
		resp, body := get(t, srv.URL+ref)
		if resp.StatusCode != 200 || len(body) == 0 {
			t.Fatalf("GET %s = %d", ref, resp.StatusCode)
		}
		if cc := resp.Header.Get("Cache-Control"); cc != "public, max-age=31536000, immutable" {
			t.Errorf("%s Cache-Control = %q", ref, cc)
		}
	}
	resp, body := get(t, srv.URL+"/sw.js")
	if resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != "no-cache" || !strings.Contains(body, "push") {
		t.Errorf("GET /sw.js = %d %q", resp.StatusCode, resp.Header.Get("Cache-Control"))
	}
	for _, path := range []string{"/assets/nope.js", "/assets/../index.html", "/assets/"} {
		if resp, _ := get(t, srv.URL+path); resp.StatusCode != 404 {
			t.Errorf("GET %s = %d, want 404", path, resp.StatusCode)
		}
	}
}

func TestTileTemplates(t *testing.T) {
	for _, c := range []struct{ in, origin, err string }{
		{DefaultTiles, "https://tile.openstreetmap.org", ""},
		{"https://{s}.tile.example.com/{z}/{x}/{y}{r}.png", "https://*.tile.example.com", ""},
		{"http://tiles.local:8081/{z}/{x}/{y}.png", "http://tiles.local:8081", ""},
		{"https://tile.example.com/{z}/{x}.png", "", "needs {z}, {x} and {y}"},
		{"ftp://tile.example.com/{z}/{x}/{y}.png", "", "want an http or https URL"},
		{"/tiles/{z}/{x}/{y}.png", "", "want an http or https URL"},
	} {
		origin, err := TileOrigin(c.in)
		if origin != c.origin || (err == nil) != (c.err == "") || (err != nil && !strings.Contains(err.Error(), c.err)) {
			t.Errorf("TileOrigin(%q) = %q, %v; want %q, error with %q", c.in, origin, err, c.origin, c.err)
		}
	}
	if _, err := New("nonsense"); err == nil || !strings.Contains(err.Error(), "--map-tiles") {
		t.Errorf("New(nonsense) = %v, want an error naming --map-tiles", err)
	}
}

// The first load (the page, its script and stylesheet, and the marker
// images) stays well under 300 KB gzip-compressed, excluding map tiles.
func TestFirstLoadIsSmall(t *testing.T) {
	const budget = 300 << 10
	page, err := fs.ReadFile(dist, "dist/index.html")
	if err != nil {
		t.Fatal(err)
	}
	files := []string{"index.html"}
	for _, ref := range regexp.MustCompile(`/(assets/[A-Za-z0-9._-]+)`).FindAllStringSubmatch(string(page), -1) {
		files = append(files, ref[1])
	}
	images, _ := fs.Glob(dist, "dist/assets/marker-*.png")
	for _, img := range images {
		files = append(files, strings.TrimPrefix(img, "dist/"))
	}
	total := 0
	for _, f := range files {
		b, err := fs.ReadFile(dist, "dist/"+f)
		if err != nil {
			t.Fatal(err)
		}
		var z bytes.Buffer
		w, _ := gzip.NewWriterLevel(&z, gzip.BestCompression)
		w.Write(b)
		w.Close()
		t.Logf("%-40s %7d bytes, %6d gzipped", f, len(b), z.Len())
		total += z.Len()
	}
	t.Logf("first load: %d bytes gzipped (budget %d)", total, budget)
	if total > budget {
		t.Errorf("first load is %d bytes gzipped, over the %d budget", total, budget)
	}
}

func TestCSPNamesOnlyAPlainHostForTheSocket(t *testing.T) {
	for host, want := range map[string]string{
		"lastmile.example.com":     "connect-src 'self' ws://lastmile.example.com wss://lastmile.example.com;",
		"127.0.0.1:8080":           "connect-src 'self' ws://127.0.0.1:8080 wss://127.0.0.1:8080;",
		"[::1]:8080":               "connect-src 'self' ws://[::1]:8080 wss://[::1]:8080;",
		"evil.com; script-src *":   "connect-src 'self';",
		"evil.com 'unsafe-inline'": "connect-src 'self';",
	} {
		if got := CSP("https://tile.openstreetmap.org", host); !strings.Contains(got, want) {
			t.Errorf("CSP for host %q = %q, want %q", host, got, want)
		}
	}
}
