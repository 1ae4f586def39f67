// Package bundle builds the web app's served files from web/src and
// web/vendor with esbuild's Go API, so building needs Go and nothing else.
package bundle

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/evanw/esbuild/pkg/api"
)

// Build bundles the app found in webDir (its src/ and vendor/ folders) and
// returns every file of web/dist, keyed by its slash-separated path inside
// dist. It writes nothing.
func Build(webDir string) (map[string][]byte, error) {
	webDir, err := filepath.Abs(webDir)
	if err != nil {
		return nil, err
	}
	dist := filepath.Join(webDir, "dist")
	out := map[string][]byte{}

	// The app: one script and one stylesheet, named by their content so
	// they can be cached for a year; images the CSS and code use likewise.
	app := api.Build(api.BuildOptions{
		AbsWorkingDir:     webDir,
		EntryPoints:       []string{"src/app.js"},
		Bundle:            true,
		MinifyWhitespace:  true,
		MinifyIdentifiers: true,
		MinifySyntax:      true,
		Format:            api.FormatIIFE,
		Target:            api.ES2020,
		Outdir:            filepath.Join(dist, "assets"),
		EntryNames:        "[name]-[hash]",
		AssetNames:        "[name]-[hash]",
		PublicPath:        "/assets/",
		Loader:            map[string]api.Loader{".png": api.LoaderFile, ".svg": api.LoaderFile},
		LegalComments:     api.LegalCommentsEndOfFile,
		Charset:           api.CharsetUTF8,
		Write:             false,
	})
	if err := failed("src/app.js", app); err != nil {
		return nil, err
	}
	var script, style string
	for _, f := range app.OutputFiles {
		rel, err := filepath.Rel(dist, f.Path)
		if err != nil {
			return nil, err
		}
		rel = filepath.ToSlash(rel)
		out[rel] = f.Contents
		switch {
		case strings.HasPrefix(rel, "assets/app-") && strings.HasSuffix(rel, ".js"):
			script = "/" + rel
		case strings.HasPrefix(rel, "assets/app-") && strings.HasSuffix(rel, ".css"):
			style = "/" + rel
		}
	}
	if script == "" || style == "" {
		return nil, fmt.Errorf("bundle: esbuild produced no app script or stylesheet")
	}

	// The service worker keeps a fixed name: its URL is its identity.
	sw := api.Build(api.BuildOptions{
		AbsWorkingDir:     webDir,
		EntryPoints:       []string{"src/sw.js"},
		Bundle:            true,
		MinifyWhitespace:  true,
		MinifyIdentifiers: true,
		MinifySyntax:      true,
		Format:            api.FormatIIFE,
		Target:            api.ES2020,
		Outfile:           filepath.Join(dist, "sw.js"),
		Write:             false,
	})
	if err := failed("src/sw.js", sw); err != nil {
		return nil, err
	}
	for _, f := range sw.OutputFiles {
		out["sw.js"] = f.Contents
	}

	page, err := os.ReadFile(filepath.Join(webDir, "src", "index.html"))
	if err != nil {
		return nil, err
	}
	if !bytes.Contains(page, []byte("{{script}}")) || !bytes.Contains(page, []byte("{{style}}")) {
		return nil, fmt.Errorf("bundle: src/index.html must contain {{script}} and {{style}}")
	}
	page = bytes.ReplaceAll(page, []byte("{{script}}"), []byte(script))
	page = bytes.ReplaceAll(page, []byte("{{style}}"), []byte(style))
	out["index.html"] = page
	return out, nil
}

func failed(entry string, r api.BuildResult) error {
	if len(r.Errors) == 0 {
		return nil
	}
	msgs := api.FormatMessages(r.Errors, api.FormatMessagesOptions{Kind: api.ErrorMessage})
	return fmt.Errorf("bundle %s: %s", entry, strings.Join(msgs, "\n"))
}
