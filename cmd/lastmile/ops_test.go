package main

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/lastmile/lastmile/internal/postgres/pgtest"
)

// alertRules is the Prometheus rules file format (the fields it uses).
type alertRules struct {
	Groups []struct {
		Name  string `json:"name"`
		Rules []struct {
			Alert       string            `json:"alert"`
			Expr        string            `json:"expr"`
			For         string            `json:"for,omitempty"`
			Labels      map[string]string `json:"labels"`
			Annotations map[string]string `json:"annotations"`
		} `json:"rules"`
	} `json:"groups"`
}

var (
	metricDef  = regexp.MustCompile(`Name:\s*"(lastmile_[a-z_]+)"`)
	metricLine = regexp.MustCompile(`(?m)^(lastmile_[a-z_]+?)(_bucket|_sum|_count)?[{ ]`)
	metricRef  = regexp.MustCompile(`\blastmile_[a-z_]+`)
)

// knownMetrics is every LastMile metric: those a running server exports
// (some appear only once observed) and those the code defines.
func knownMetrics(tb testing.TB) map[string]bool {
	tb.Helper()
	s := startServer(tb, pgtest.URL(tb), nil)
	resp, err := http.Get(s.MetricsURL)
	if err != nil {
		tb.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	known := map[string]bool{}
	for _, m := range metricLine.FindAllStringSubmatch(string(body), -1) {
		known[m[1]] = true
	}
	err = filepath.WalkDir("../../internal", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		b, err := os.ReadFile(path)
		for _, m := range metricDef.FindAllStringSubmatch(string(b), -1) {
			known[m[1]] = true
		}
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	if !known["lastmile_db_pool_acquired_conns"] || !known["lastmile_http_requests_total"] {
		tb.Fatalf("the metric list looks wrong: %v", known)
	}
	return known
}

// The alert rules parse, name only metrics that exist, and each has a
// severity, a summary and a section in docs/operations.md; that page
// describes every metric.
func TestAlertRulesAndOperationsDoc(t *testing.T) {
	known := knownMetrics(t)
	doc, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	for m := range known {
		if !strings.Contains(string(doc), "`"+m) {
			t.Errorf("docs/operations.md does not describe %s", m)
		}
	}

	raw, err := os.ReadFile("../../deploy/prometheus/alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var rules alertRules
	if err := yaml.UnmarshalStrict(raw, &rules); err != nil {
		t.Fatalf("alerts.yaml: %v", err)
	}
	seen := map[string]bool{}
	for _, g := range rules.Groups {
		if len(g.Rules) == 0 {
			t.Errorf("group %q has no rules", g.Name)
		}
		for _, r := range g.Rules {
			if r.Alert == "" || seen[r.Alert] {
				t.Errorf("alert %q: missing or duplicate name", r.Alert)
			}
			seen[r.Alert] = true
			if r.For != "" {
				if _, err := time.ParseDuration(r.For); err != nil {
					t.Errorf("%s: for %q: %v", r.Alert, r.For, err)
				}
			}
			if r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
				t.Errorf("%s: needs a severity label and a summary", r.Alert)
			}
			if strings.Count(r.Expr, "(") != strings.Count(r.Expr, ")") || strings.Count(r.Expr, "{") != strings.Count(r.Expr, "}") {
				t.Errorf("%s: unbalanced expression %q", r.Alert, r.Expr)
			}
			for _, ref := range metricRef.FindAllString(r.Expr, -1) {
				name := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(ref, "_bucket"), "_sum"), "_count")
				if !known[name] {
					t.Errorf("%s uses %s, which LastMile does not export", r.Alert, ref)
				}
			}
			if !strings.Contains(string(doc), "### "+r.Alert+"\n") {
				t.Errorf("docs/operations.md has no section for %s", r.Alert)
			}
		}
	}
	if len(seen) < 10 {
		t.Errorf("only %d alerts", len(seen))
	}
}
