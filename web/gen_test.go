package web

import (
	"bytes"
	"io/fs"
	"path/filepath"
	"testing"

	"github.com/lastmile/lastmile/web/internal/bundle"
)

// TestBundleIsFresh rebuilds the app from web/src in memory and fails when
// the committed web/dist differs: run `go generate ./web` and commit.
func TestBundleIsFresh(t *testing.T) {
	want, err := bundle.Build(".")
	if err != nil {
		t.Fatal(err)
	}
	have := map[string][]byte{}
	err = fs.WalkDir(dist, "dist", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(dist, p)
		rel, _ := filepath.Rel("dist", p)
		have[filepath.ToSlash(rel)] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range want {
		if h, ok := have[name]; !ok {
			t.Errorf("web/dist/%s is missing: run go generate ./web and commit web/dist", name)
		} else if !bytes.Equal(h, b) {
			t.Errorf("web/dist/%s is stale: run go generate ./web and commit web/dist", name)
		}
	}
	for name := range have {
		if _, ok := want[name]; !ok {
			t.Errorf("web/dist/%s is left over from an old build: run go generate ./web and commit web/dist", name)
		}
	}
}
