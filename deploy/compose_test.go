package deploy_test

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

// composeService is the part of the Compose format compose.yaml uses.
type composeService struct {
	Image           string            `json:"image"`
	Build           string            `json:"build,omitempty"`
	Command         []string          `json:"command,omitempty"`
	Environment     map[string]string `json:"environment,omitempty"`
	ReadOnly        bool              `json:"read_only,omitempty"`
	User            string            `json:"user,omitempty"`
	StopGracePeriod string            `json:"stop_grace_period,omitempty"`
	Healthcheck     *struct {
		Test        []string `json:"test"`
		Interval    string   `json:"interval"`
		Timeout     string   `json:"timeout"`
		Retries     int      `json:"retries"`
		StartPeriod string   `json:"start_period,omitempty"`
	} `json:"healthcheck,omitempty"`
	DependsOn any      `json:"depends_on,omitempty"`
	Volumes   []string `json:"volumes,omitempty"`
	Ports     []string `json:"ports,omitempty"`
	Restart   string   `json:"restart,omitempty"`
}

type composeFile struct {
	XLastMile map[string]any            `json:"x-lastmile"`
	Services  map[string]composeService `json:"services"`
	Volumes   map[string]any            `json:"volumes"`
}

// compose.yaml runs what deploy/ describes: three replicas of the same
// image with the same settings, HAProxy checking /readyz in front, and the
// same Postgres.
func TestComposeMatchesTheManifests(t *testing.T) {
	var f composeFile
	strict(t, "compose.yaml", read(t, "../compose.yaml"), &f)
	base, demo := load(t, "base"), load(t, "overlays/demo")
	d := base.deployments[0]
	c := d.Spec.Template.Spec.Containers[0]
	env := envOf(c)

	replicas := []string{"lastmile-1", "lastmile-2", "lastmile-3"}
	for _, name := range replicas {
		s, ok := f.Services[name]
		if !ok {
			t.Fatalf("no service %s", name)
		}
		if s.Image != c.Image || !slices.Equal(s.Command, c.Args) {
			t.Errorf("%s runs %s %v, the Deployment %s %v", name, s.Image, s.Command, c.Image, c.Args)
		}
		for _, k := range []string{"LASTMILE_ADDR", "LASTMILE_METRICS_ADDR", "LASTMILE_LOG_FORMAT", "LASTMILE_DRAIN_DELAY", "LASTMILE_SHUTDOWN_TIMEOUT", "LASTMILE_DB_MAX_CONNS"} {
			if s.Environment[k] != env[k].Value {
				t.Errorf("%s: %s = %q, the Deployment says %q", name, k, s.Environment[k], env[k].Value)
			}
		}
		for k := range s.Environment {
			if strings.HasPrefix(k, "LASTMILE_") && !strings.Contains(serverEnv(t), `"`+k+`"`) {
				t.Errorf("%s sets %s, which lastmile does not read", name, k)
			}
		}
		if s.Environment["DATABASE_URL"] == "" {
			t.Errorf("%s has no DATABASE_URL", name)
		}
		grace, err := time.ParseDuration(s.StopGracePeriod)
		if err != nil || grace != time.Duration(*d.Spec.Template.Spec.TerminationGracePeriodSeconds)*time.Second {
			t.Errorf("%s: stop_grace_period %q, the Deployment's grace period is %ds", name, s.StopGracePeriod, *d.Spec.Template.Spec.TerminationGracePeriodSeconds)
		}
		if s.Healthcheck == nil || !slices.Equal(s.Healthcheck.Test, []string{"CMD", "/lastmile", "healthcheck"}) {
			t.Errorf("%s: healthcheck %+v, want the binary's own (the image has no shell or curl)", name, s.Healthcheck)
		}
		if !s.ReadOnly || s.User != fmt.Sprintf("%d:%d", *d.Spec.Template.Spec.SecurityContext.RunAsUser, *d.Spec.Template.Spec.SecurityContext.RunAsGroup) {
			t.Errorf("%s: read_only %t user %q, want read-only as the Deployment's user", name, s.ReadOnly, s.User)
		}
	}
	if m := f.Services["migrate"]; m.Image != c.Image || !slices.Equal(m.Command, []string{"migrate"}) || m.Environment["DATABASE_URL"] != f.Services["lastmile-1"].Environment["DATABASE_URL"] {
		t.Errorf("migrate service = %+v, want `migrate` with the replicas' image and database", m)
	}

	// Postgres: the demo overlay's image and connection limit.
	pg := f.Services["postgres"]
	demoPG := demo.statefulSets[0].Spec.Template.Spec.Containers[0]
	if pg.Image != demoPG.Image {
		t.Errorf("Postgres image %s, the demo overlay's %s", pg.Image, demoPG.Image)
	}
	m := maxConnsFlag.FindStringSubmatch(strings.Join(pg.Command, " "))
	if m == nil {
		t.Fatal("compose's Postgres does not set max_connections")
	}
	maxConns, _ := strconv.Atoi(m[1])
	perReplica, _ := strconv.Atoi(env["LASTMILE_DB_MAX_CONNS"].Value)
	if need := len(replicas)*perReplica + 10; need > maxConns {
		t.Errorf("%d replicas need %d connections, max_connections is %d", len(replicas), need, maxConns)
	}
	if pg.Healthcheck == nil || !slices.Contains(pg.Healthcheck.Test, "pg_isready") {
		t.Errorf("Postgres healthcheck %+v, want pg_isready", pg.Healthcheck)
	}

	// HAProxy: publishes the API and checks each replica's /readyz.
	lb := f.Services["haproxy"]
	if !strings.HasPrefix(lb.Image, "haproxy:") || !slices.Contains(lb.Ports, "8080:8080") {
		t.Errorf("haproxy service = %+v, want an haproxy image publishing 8080", lb)
	}
	var cfgPath string
	for _, v := range lb.Volumes {
		if src, dst, _ := strings.Cut(v, ":"); strings.HasSuffix(dst, "haproxy.cfg:ro") || strings.HasSuffix(dst, "haproxy.cfg") {
			cfgPath = src
		}
	}
	if cfgPath == "" {
		t.Fatal("haproxy mounts no haproxy.cfg")
	}
	cfg := string(read(t, "../"+strings.TrimPrefix(cfgPath, "./")))
	_, port, _ := strings.Cut(env["LASTMILE_ADDR"].Value, ":")
	for _, want := range []string{"option httpchk GET /readyz", "http-check expect status 200", "timeout tunnel", "bind :8080"} {
		if !strings.Contains(cfg, want) {
			t.Errorf("haproxy.cfg lacks %q", want)
		}
	}
	servers := regexp.MustCompile(`(?m)^\s*server\s+(\S+)\s+(\S+)\s+check`).FindAllStringSubmatch(cfg, -1)
	var got []string
	for _, s := range servers {
		got = append(got, s[2])
	}
	var want []string
	for _, r := range replicas {
		want = append(want, r+":"+port)
	}
	if !slices.Equal(got, want) {
		t.Errorf("haproxy.cfg checks servers %v, want %v", got, want)
	}
	if strings.Contains(cfg, "shutdown-sessions") {
		t.Error("haproxy.cfg cuts a draining replica's WebSockets (shutdown-sessions) before they get their 1001")
	}
}

// compose.yaml is valid YAML that the strict decoder reads completely: a
// field outside the subset above is a mistake or needs adding here.
func TestComposeHasNoUnknownFields(t *testing.T) {
	var f composeFile
	if err := yaml.UnmarshalStrict(read(t, "../compose.yaml"), &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Services) != 6 {
		t.Errorf("%d services, want postgres, migrate, three replicas and haproxy", len(f.Services))
	}
}
