package notify

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/lastmile/lastmile/internal/httpx"
)

// TestOpenAPIDescribesEveryRoute fails when Routes serves something the
// fragment lacks, or the fragment describes something not served.
func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	doc, err := httpx.OpenAPI(httpx.OpenAPIBase, OpenAPI)
	if err != nil {
		t.Fatalf("the fragment does not merge into the base document: %v", err)
	}
	var parsed struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(OpenAPI, &parsed); err != nil {
		t.Fatal(err)
	}
	var documented []string
	for path, ops := range parsed.Paths {
		for method := range ops {
			documented = append(documented, method+" "+path)
		}
	}
	r := chi.NewRouter()
	NewHandler(&Service{}).Routes(r, func(h http.Handler) http.Handler { return h })
	var served []string
	_ = chi.Walk(r, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		served = append(served, strings.ToLower(method)+" "+route)
		return nil
	})
	slices.Sort(documented)
	slices.Sort(served)
	if !slices.Equal(documented, served) {
		t.Fatalf("documented %v\nserved     %v", documented, served)
	}
	// Every reference resolves in the merged document.
	var merged map[string]any
	if err := json.Unmarshal(doc, &merged); err != nil {
		t.Fatal(err)
	}
	for _, ref := range refs(OpenAPI) {
		node := any(merged)
		for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
			m, _ := node.(map[string]any)
			node = m[part]
		}
		if node == nil {
			t.Errorf("%s does not resolve", ref)
		}
	}
}

func refs(doc []byte) []string {
	var out []string
	s := string(doc)
	for {
		i := strings.Index(s, `"$ref": "`)
		if i < 0 {
			return out
		}
		s = s[i+len(`"$ref": "`):]
		out = append(out, s[:strings.Index(s, `"`)])
	}
}
