package httpx

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
)

// OpenAPI merges per-domain OpenAPI 3.1 fragments into one document. base
// holds openapi, info, servers, security schemes and shared components;
// each fragment holds "paths" and optionally "components" ("schemas",
// "parameters", "responses"). Two fragments that define the same path or
// component name are an error, so domains cannot silently override each
// other.
func OpenAPI(base []byte, fragments ...[]byte) ([]byte, error) {
	var doc map[string]any
	if err := json.Unmarshal(base, &doc); err != nil {
		return nil, fmt.Errorf("openapi base: %w", err)
	}
	paths := asMap(doc, "paths")
	comps := asMap(doc, "components")
	for i, f := range fragments {
		var frag map[string]any
		if err := json.Unmarshal(f, &frag); err != nil {
			return nil, fmt.Errorf("openapi fragment %d: %w", i, err)
		}
		for p, v := range asMap(frag, "paths") {
			if _, dup := paths[p]; dup {
				return nil, fmt.Errorf("openapi fragment %d: path %s defined twice", i, p)
			}
			paths[p] = v
		}
		for section, v := range asMap(frag, "components") {
			dst := asMap(comps, section)
			src, _ := v.(map[string]any)
			for _, name := range slices.Sorted(maps.Keys(src)) {
				if _, dup := dst[name]; dup {
					return nil, fmt.Errorf("openapi fragment %d: components.%s.%s defined twice", i, section, name)
				}
				dst[name] = src[name]
			}
		}
	}
	return json.MarshalIndent(doc, "", "  ")
}

// asMap returns m[key] as a map, creating it when absent.
func asMap(m map[string]any, key string) map[string]any {
	if v, ok := m[key].(map[string]any); ok {
		return v
	}
	v := map[string]any{}
	m[key] = v
	return v
}

// OpenAPIBase is the base document: info, operations endpoints, security
// schemes and the shared error responses every fragment refers to.
//
//go:embed openapi_base.json
var OpenAPIBase []byte

//go:embed apidocs.html
var apiDocsPage []byte

//go:embed apidocs.js
var apiDocsScript []byte

//go:embed apidocs.css
var apiDocsStyle []byte

// apiDocsPolicy lets the docs page load only its own script, style sheet
// and the document, with no inline script (API.md: HTML pages carry a
// Content-Security-Policy without inline script).
const apiDocsPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// ServeOpenAPI serves doc at GET /api/v1/openapi.json and a page that
// renders it for a person at GET /api/docs (with its script and style
// sheet under /api/docs/).
func ServeOpenAPI(r interface {
	Get(pattern string, h http.HandlerFunc)
}, doc []byte) {
	static := func(contentType string, body []byte, csp string) http.HandlerFunc {
		return func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", contentType)
			if csp != "" {
				w.Header().Set("Content-Security-Policy", csp)
			}
			_, _ = w.Write(body)
		}
	}
	r.Get("/api/v1/openapi.json", static("application/json", doc, ""))
	r.Get("/api/docs", static("text/html; charset=utf-8", apiDocsPage, apiDocsPolicy))
	r.Get("/api/docs/docs.js", static("text/javascript; charset=utf-8", apiDocsScript, ""))
	r.Get("/api/docs/docs.css", static("text/css; charset=utf-8", apiDocsStyle, ""))
}
