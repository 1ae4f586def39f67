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

// ServeOpenAPI serves doc at GET /api/v1/openapi.json and a page that
// renders it for a person at GET /api/docs.
func ServeOpenAPI(r interface {
	Get(pattern string, h http.HandlerFunc)
}, doc []byte) {
	r.Get("/api/v1/openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(doc)
	})
	r.Get("/api/docs", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'")
		_, _ = w.Write(apiDocsPage)
	})
}
