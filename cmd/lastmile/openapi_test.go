package main

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/lastmile/lastmile/internal/postgres/pgtest"
	"github.com/lastmile/lastmile/web"
)

// TestOpenAPIMatchesRoutes fails when a route exists that the OpenAPI
// document lacks, or the document describes a route that does not exist.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	logger := slog.New(slog.DiscardHandler)
	a, err := newApp(testConfig(), pgtest.New(t), logger, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	r := a.router(&health{}, prometheus.NewRegistry(), logger)

	var served []string
	err = chi.Walk(r, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		served = append(served, strings.ToLower(method)+" "+strings.TrimSuffix(route, "/*"))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(a.openapi, &doc); err != nil {
		t.Fatal(err)
	}
	var documented []string
	for path, ops := range doc.Paths {
		for method := range ops {
			if method == "parameters" || method == "summary" || method == "description" {
				continue
			}
			documented = append(documented, method+" "+path)
		}
	}
	for _, s := range served {
		if isWebApp(s) {
			continue // the browser app's pages and files are not API
		}
		if !slices.Contains(documented, s) {
			t.Errorf("route %q is served but not in the OpenAPI document", s)
		}
	}
	for _, d := range documented {
		if !slices.Contains(served, d) {
			t.Errorf("the OpenAPI document describes %q, which is not served", d)
		}
	}
	if len(served) < 5 {
		t.Fatalf("only %d routes found: the walk is broken", len(served))
	}

	// What the document says about who may call each operation matches
	// routeRules, which TestEveryRouteIsGuarded checks against the server.
	var ops struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(a.openapi, &ops); err != nil {
		t.Fatal(err)
	}
	for path, byMethod := range ops.Paths {
		for method, raw := range byMethod {
			if method == "parameters" || method == "summary" || method == "description" {
				continue
			}
			var op struct {
				Security  []map[string]any           `json:"security"`
				Responses map[string]json.RawMessage `json:"responses"`
			}
			if err := json.Unmarshal(raw, &op); err != nil {
				t.Fatal(err)
			}
			key := strings.ToUpper(method) + " " + path
			rule, ok := routeRules[key]
			if !ok {
				continue // reported by TestEveryRouteIsGuarded
			}
			_, has401 := op.Responses["401"]
			_, has403 := op.Responses["403"]
			switch {
			case rule.public && len(op.Security) > 0:
				t.Errorf("%s is public but documented as needing a token", key)
			case !rule.public && (len(op.Security) == 0 || !has401):
				t.Errorf("%s needs a token but the document lacks its security or its 401", key)
			case !rule.public && len(rule.roles) < 3 && !has403:
				t.Errorf("%s is for %v only but the document lacks its 403", key, rule.roles)
			}
		}
	}
}

func TestOpenAPIDocumentAndPageAreServed(t *testing.T) {
	s := startServer(t, pgtest.URL(t), nil)
	var doc map[string]any
	if code := getJSON(t, s.URL+"/api/v1/openapi.json", &doc); code != 200 || doc["openapi"] != "3.1.0" {
		t.Fatalf("openapi.json = %d, openapi %v", code, doc["openapi"])
	}
	resp, err := http.Get(s.URL + "/api/docs")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Type"), "text/html") || !strings.Contains(string(body), "/api/v1/openapi.json") {
		t.Fatalf("/api/docs = %d %s, want an HTML page that loads the document", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}

// isWebApp reports whether a served "method path" is the web app's.
func isWebApp(route string) bool {
	_, path, _ := strings.Cut(route, " ")
	return slices.Contains(web.AppPaths, path) || path == "/assets/{file}" || path == "/sw.js"
}
