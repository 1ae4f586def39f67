// Command gen rebuilds web/dist from web/src: go generate ./web
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/lastmile/lastmile/web/internal/bundle"
)

func main() {
	if err := run("."); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// run replaces webDir/dist with a fresh build.
func run(webDir string) error {
	files, err := bundle.Build(webDir)
	if err != nil {
		return err
	}
	dist := filepath.Join(webDir, "dist")
	if err := os.RemoveAll(dist); err != nil {
		return err
	}
	for name, b := range files {
		p := filepath.Join(dist, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return err
		}
	}
	fmt.Printf("wrote %d files to %s\n", len(files), dist)
	return nil
}
