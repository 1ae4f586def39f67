package main

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// httpImports are the packages of the HTTP layer: only a domain's http.go
// (its handlers and routes) may import them.
var httpImports = []string{
	"net/http",
	"github.com/go-chi/chi/v5",
	"github.com/lastmile/lastmile/internal/httpx",
}

// httpExceptions are the other files of a domain that may import one of
// httpImports, by path under internal/, with the one import each may use.
var httpExceptions = map[string]map[string]string{
	// The socket serves the real-time protocol: it logs with the request's
	// logger (httpx.Logger) for the request that opened it.
	"notify/socket.go": {"github.com/lastmile/lastmile/internal/httpx": "the request's logger"},
	// Web Push is sent with an HTTP client to the browser's push service.
	"notify/push.go": {"net/http": "the push service is an HTTP endpoint"},
	// The socket test client, imported by tests only, dials over HTTP.
	"notify/notifytest/notifytest.go": {"net/http": "dials the socket"},
}

// TestDomainLogicIsFreeOfHTTP fails when a domain's logic (any non-test file
// of internal/<domain> but http.go) imports net/http, chi or httpx
// (ARCHITECTURE.md: domain logic never depends on net/http; issue 15). The
// same holds for idempotency, which domains call in their transactions. It
// reads the imports with go/parser, so it needs no build.
func TestDomainLogicIsFreeOfHTTP(t *testing.T) {
	domains := []string{"user", "driver", "rider", "trip", "location", "matching", "station", "notify", "idempotency"}
	checked := 0
	for _, d := range domains {
		root := filepath.Join("..", "..", "internal", d)
		err := filepath.WalkDir(root, func(path string, e fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if e.IsDir() && e.Name() == "testdata" {
				return filepath.SkipDir
			}
			name := e.Name()
			if e.IsDir() || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") || name == "http.go" {
				return nil
			}
			rel, err := filepath.Rel(filepath.Join("..", "..", "internal"), path)
			if err != nil {
				return err
			}
			rel = filepath.ToSlash(rel)
			f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
			if err != nil {
				return err
			}
			checked++
			for _, imp := range f.Imports {
				p, err := strconv.Unquote(imp.Path.Value)
				if err != nil {
					return err
				}
				for _, h := range httpImports {
					if p != h && !strings.HasPrefix(p, h+"/") {
						continue
					}
					if _, ok := httpExceptions[rel][p]; ok {
						continue
					}
					t.Errorf("internal/%s imports %s: domain logic must not depend on the HTTP layer; move the HTTP part to http.go", rel, p)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("read internal/%s: %v", d, err)
		}
	}
	if checked < len(domains) {
		t.Fatalf("checked %d files in %d domains: the walk found no code", checked, len(domains))
	}
}
