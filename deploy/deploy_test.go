// Package deploy_test checks the Kubernetes manifests, compose.yaml and the
// HAProxy configuration offline: every manifest decodes strictly into its
// Kubernetes API type (unknown fields and wrong types fail), and the pieces
// agree with each other and with the binary (probe paths, ports, labels and
// selectors, variables, the grace period).
package deploy_test

import (
	"bytes"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// kustomization is the part of kustomize's file format these manifests use;
// decoding it strictly catches a misspelt or unsupported field.
type kustomization struct {
	APIVersion      string   `json:"apiVersion"`
	Kind            string   `json:"kind"`
	Namespace       string   `json:"namespace,omitempty"`
	Resources       []string `json:"resources"`
	SecretGenerator []struct {
		Name     string   `json:"name"`
		Literals []string `json:"literals"`
	} `json:"secretGenerator,omitempty"`
	Images []struct {
		Name    string `json:"name"`
		NewName string `json:"newName,omitempty"`
		NewTag  string `json:"newTag,omitempty"`
	} `json:"images,omitempty"`
}

// objects is every object of a kustomization, decoded.
type objects struct {
	deployments  []*appsv1.Deployment
	statefulSets []*appsv1.StatefulSet
	services     []*corev1.Service
	hpas         []*autoscalingv2.HorizontalPodAutoscaler
	pdbs         []*policyv1.PodDisruptionBudget
	netpols      []*networkingv1.NetworkPolicy
	jobs         []*batchv1.Job
	secrets      map[string]map[string]string // from secretGenerator: name → key → value
	images       map[string]string            // image name → tag override
}

// load decodes the kustomization in dir and everything it includes.
func load(tb testing.TB, dir string) *objects {
	tb.Helper()
	o := &objects{secrets: map[string]map[string]string{}, images: map[string]string{}}
	o.loadDir(tb, dir)
	return o
}

func (o *objects) loadDir(tb testing.TB, dir string) {
	tb.Helper()
	var k kustomization
	strict(tb, filepath.Join(dir, "kustomization.yaml"), read(tb, filepath.Join(dir, "kustomization.yaml")), &k)
	if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" {
		tb.Errorf("%s: apiVersion/kind = %s/%s", dir, k.APIVersion, k.Kind)
	}
	// Every YAML file in the folder is used: a manifest left out is a bug.
	files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	for _, f := range files {
		if base := filepath.Base(f); base != "kustomization.yaml" && !slices.Contains(k.Resources, base) {
			tb.Errorf("%s is not listed in %s/kustomization.yaml", base, dir)
		}
	}
	for _, g := range k.SecretGenerator {
		kv := map[string]string{}
		for _, l := range g.Literals {
			key, val, ok := strings.Cut(l, "=")
			if !ok {
				tb.Errorf("%s: secret %s literal %q is not key=value", dir, g.Name, l)
			}
			kv[key] = val
		}
		o.secrets[g.Name] = kv
	}
	for _, im := range k.Images {
		o.images[im.Name] = im.NewTag
	}
	for _, r := range k.Resources {
		p := filepath.Join(dir, r)
		if st, err := os.Stat(p); err == nil && st.IsDir() {
			o.loadDir(tb, p)
			continue
		}
		for i, doc := range bytes.Split(read(tb, p), []byte("\n---\n")) {
			o.decode(tb, fmt.Sprintf("%s (document %d)", p, i+1), doc)
		}
	}
}

func (o *objects) decode(tb testing.TB, where string, doc []byte) {
	tb.Helper()
	var meta struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := yaml.Unmarshal(doc, &meta); err != nil {
		tb.Fatalf("%s: %v", where, err)
	}
	into := func(v any) { strict(tb, where, doc, v) }
	switch meta.APIVersion + " " + meta.Kind {
	case "apps/v1 Deployment":
		v := &appsv1.Deployment{}
		into(v)
		o.deployments = append(o.deployments, v)
	case "apps/v1 StatefulSet":
		v := &appsv1.StatefulSet{}
		into(v)
		o.statefulSets = append(o.statefulSets, v)
	case "v1 Service":
		v := &corev1.Service{}
		into(v)
		o.services = append(o.services, v)
	case "autoscaling/v2 HorizontalPodAutoscaler":
		v := &autoscalingv2.HorizontalPodAutoscaler{}
		into(v)
		o.hpas = append(o.hpas, v)
	case "policy/v1 PodDisruptionBudget":
		v := &policyv1.PodDisruptionBudget{}
		into(v)
		o.pdbs = append(o.pdbs, v)
	case "networking.k8s.io/v1 NetworkPolicy":
		v := &networkingv1.NetworkPolicy{}
		into(v)
		o.netpols = append(o.netpols, v)
	case "batch/v1 Job":
		v := &batchv1.Job{}
		into(v)
		o.jobs = append(o.jobs, v)
	default:
		tb.Errorf("%s: %s %s is not a kind this test knows; add it", where, meta.APIVersion, meta.Kind)
	}
}

func read(tb testing.TB, path string) []byte {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func strict(tb testing.TB, where string, doc []byte, v any) {
	tb.Helper()
	if err := yaml.UnmarshalStrict(doc, v); err != nil {
		tb.Errorf("%s: %v", where, err)
	}
}

// Strict decoding really is strict: these would be accepted by a lenient
// decoder.
func TestStrictDecodingRefusesMistakes(t *testing.T) {
	for name, doc := range map[string]string{
		"unknown field":   "apiVersion: v1\nkind: Service\nspec:\n  selectr: {app: x}\n",
		"wrong type":      "apiVersion: v1\nkind: Service\nspec:\n  ports: [{port: eighty}]\n",
		"duplicate field": "apiVersion: v1\nkind: Service\nspec:\n  type: ClusterIP\n  type: NodePort\n",
		"bad quantity":    "apiVersion: apps/v1\nkind: Deployment\nspec:\n  template:\n    spec:\n      containers: [{name: x, resources: {limits: {cpu: lots}}}]\n",
	} {
		var err error
		if strings.Contains(doc, "Deployment") {
			err = yaml.UnmarshalStrict([]byte(doc), &appsv1.Deployment{})
		} else {
			err = yaml.UnmarshalStrict([]byte(doc), &corev1.Service{})
		}
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// serverEnv is the environment the binary reads, from cmd/lastmile's flags.
func serverEnv(tb testing.TB) string {
	tb.Helper()
	return string(read(tb, "../cmd/lastmile/config.go"))
}

func envOf(c corev1.Container) map[string]corev1.EnvVar {
	m := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		m[e.Name] = e
	}
	return m
}

func duration(tb testing.TB, env map[string]corev1.EnvVar, name string) time.Duration {
	tb.Helper()
	d, err := time.ParseDuration(env[name].Value)
	if err != nil {
		tb.Fatalf("%s = %q: %v", name, env[name].Value, err)
	}
	return d
}

// selects reports whether selector labels all appear in labels.
func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func TestBaseManifests(t *testing.T) {
	o := load(t, "base")
	if len(o.deployments) != 1 || len(o.services) != 1 || len(o.hpas) != 1 || len(o.pdbs) != 1 || len(o.netpols) != 1 || len(o.jobs) != 1 {
		t.Fatalf("base has %d deployments, %d services, %d HPAs, %d PDBs, %d network policies, %d jobs; want one of each",
			len(o.deployments), len(o.services), len(o.hpas), len(o.pdbs), len(o.netpols), len(o.jobs))
	}
	d := o.deployments[0]
	pod := d.Spec.Template
	checkServerPod(t, d)

	// Cross-references.
	if !selects(d.Spec.Selector.MatchLabels, pod.Labels) {
		t.Errorf("Deployment selector %v does not select its pods %v", d.Spec.Selector.MatchLabels, pod.Labels)
	}
	svc := o.services[0]
	if !selects(svc.Spec.Selector, pod.Labels) {
		t.Errorf("Service selector %v does not select the pods %v", svc.Spec.Selector, pod.Labels)
	}
	c := pod.Spec.Containers[0]
	for _, p := range svc.Spec.Ports {
		if !namesPort(c, p.TargetPort) {
			t.Errorf("Service targetPort %v is no port of the container", p.TargetPort.String())
		}
	}
	hpa := o.hpas[0]
	if hpa.Spec.ScaleTargetRef.Kind != "Deployment" || hpa.Spec.ScaleTargetRef.Name != d.Name || hpa.Spec.ScaleTargetRef.APIVersion != "apps/v1" {
		t.Errorf("HPA scales %+v, want the Deployment %s", hpa.Spec.ScaleTargetRef, d.Name)
	}
	if hpa.Spec.MinReplicas == nil || *hpa.Spec.MinReplicas != 1 || hpa.Spec.MaxReplicas != 5 {
		t.Errorf("HPA replicas %v..%d, want 1..5", hpa.Spec.MinReplicas, hpa.Spec.MaxReplicas)
	}
	if len(hpa.Spec.Metrics) != 1 || hpa.Spec.Metrics[0].Resource == nil || hpa.Spec.Metrics[0].Resource.Name != corev1.ResourceCPU {
		t.Errorf("HPA metrics = %+v, want CPU", hpa.Spec.Metrics)
	}
	if d.Spec.Replicas != nil {
		t.Errorf("the Deployment sets replicas (%d): it would fight the HPA on every apply", *d.Spec.Replicas)
	}
	if pdb := o.pdbs[0]; !selects(pdb.Spec.Selector.MatchLabels, pod.Labels) {
		t.Errorf("PDB selector %v does not select the pods", pdb.Spec.Selector.MatchLabels)
	}
	np := o.netpols[0]
	if !selects(np.Spec.PodSelector.MatchLabels, pod.Labels) {
		t.Errorf("NetworkPolicy selects %v, not the pods", np.Spec.PodSelector.MatchLabels)
	}
	var in, pg bool
	for _, r := range np.Spec.Ingress {
		for _, p := range r.Ports {
			in = in || p.Port != nil && namesPort(c, *p.Port)
		}
	}
	for _, r := range np.Spec.Egress {
		for _, p := range r.Ports {
			pg = pg || p.Port != nil && p.Port.IntValue() == 5432
		}
	}
	if !in || !pg {
		t.Errorf("NetworkPolicy lets in the server port: %t, lets out Postgres (5432): %t; want both", in, pg)
	}

	// The migrate Job runs the same image on the same database.
	job := o.jobs[0]
	jc := job.Spec.Template.Spec.Containers[0]
	if jc.Image != c.Image || !slices.Equal(jc.Args, []string{"migrate"}) {
		t.Errorf("Job runs %s %v, want %s [migrate]", jc.Image, jc.Args, c.Image)
	}
	if !sameSecret(envOf(jc)["DATABASE_URL"], envOf(c)["DATABASE_URL"]) {
		t.Error("the Job and the Deployment take DATABASE_URL from different places")
	}
	if job.Spec.Template.Spec.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("Job restartPolicy = %s, want Never (backoffLimit retries)", job.Spec.Template.Spec.RestartPolicy)
	}
	checkHardened(t, "Job", job.Spec.Template.Spec)
	for _, e := range jc.Env {
		if strings.HasPrefix(e.Name, "LASTMILE_") && !strings.Contains(serverEnv(t), `"`+e.Name+`"`) {
			t.Errorf("the Job sets %s, which lastmile does not read", e.Name)
		}
	}
}

// checkServerPod checks the server's pod template on its own.
func checkServerPod(t *testing.T, d *appsv1.Deployment) {
	t.Helper()
	spec := d.Spec.Template.Spec
	if len(spec.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(spec.Containers))
	}
	c := spec.Containers[0]
	env := envOf(c)
	checkHardened(t, "Deployment", spec)

	// Every LASTMILE_ variable is one the binary reads.
	for name := range env {
		if strings.HasPrefix(name, "LASTMILE_") && !strings.Contains(serverEnv(t), `"`+name+`"`) {
			t.Errorf("the Deployment sets %s, which lastmile does not read", name)
		}
	}
	if env["DATABASE_URL"].ValueFrom == nil || env["DATABASE_URL"].ValueFrom.SecretKeyRef == nil {
		t.Error("DATABASE_URL must come from a Secret")
	}
	// The listen addresses are the container ports, and Prometheus is told
	// the metrics one.
	_, port, _ := strings.Cut(env["LASTMILE_ADDR"].Value, ":")
	_, mport, _ := strings.Cut(env["LASTMILE_METRICS_ADDR"].Value, ":")
	ports := map[string]string{}
	for _, p := range c.Ports {
		ports[p.Name] = strconv.Itoa(int(p.ContainerPort))
	}
	if len(c.Ports) != 2 || ports["http"] != port || ports["metrics"] != mport || port == mport {
		t.Errorf("container ports %+v, want http on LASTMILE_ADDR's port %s and metrics on LASTMILE_METRICS_ADDR's %s", c.Ports, port, mport)
	}
	if a := d.Spec.Template.Annotations; a["prometheus.io/port"] != mport || a["prometheus.io/path"] != "/metrics" {
		t.Errorf("Prometheus annotations %v, want /metrics on port %s", a, mport)
	}
	// Probes: the paths the server serves, on its port.
	serve := string(read(t, "../cmd/lastmile/serve.go"))
	for _, p := range []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{{"startup", c.StartupProbe, "/readyz"}, {"readiness", c.ReadinessProbe, "/readyz"}, {"liveness", c.LivenessProbe, "/healthz"}} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("no %s probe over HTTP", p.name)
			continue
		}
		if p.probe.HTTPGet.Path != p.path || !namesPort(c, p.probe.HTTPGet.Port) {
			t.Errorf("%s probe GET %s on %s, want %s on the container port", p.name, p.probe.HTTPGet.Path, p.probe.HTTPGet.Port.String(), p.path)
		}
		if !strings.Contains(serve, `r.Get("`+p.path+`"`) {
			t.Errorf("the server does not serve %s", p.path)
		}
	}
	// Resources: requests and limits for CPU and memory, requests within limits.
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, okReq := c.Resources.Requests[r]
		lim, okLim := c.Resources.Limits[r]
		if !okReq || !okLim || req.Cmp(lim) > 0 {
			t.Errorf("%s: request %v, limit %v; want both, request ≤ limit", r, req.String(), lim.String())
		}
	}
	// Shutdown: Kubernetes kills the pod terminationGracePeriodSeconds after
	// SIGTERM; the drain, the in-flight requests and the sockets' close
	// handshakes (up to 5 s more) must fit.
	grace := time.Duration(*spec.TerminationGracePeriodSeconds) * time.Second
	need := duration(t, env, "LASTMILE_DRAIN_DELAY") + duration(t, env, "LASTMILE_SHUTDOWN_TIMEOUT") + 5*time.Second
	if grace <= need {
		t.Errorf("terminationGracePeriodSeconds %v, want more than drain + shutdown timeout + 5 s = %v", grace, need)
	}
	if mem, ok := env["GOMEMLIMIT"]; ok {
		lim := c.Resources.Limits[corev1.ResourceMemory]
		if v := parseBytes(t, mem.Value); v >= lim.Value() {
			t.Errorf("GOMEMLIMIT %s is not below the memory limit %s", mem.Value, lim.String())
		}
	}
}

// checkHardened: not root, no writable root filesystem, no escalation, no
// capabilities, no service-account token.
func checkHardened(t *testing.T, what string, spec corev1.PodSpec) {
	t.Helper()
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Errorf("%s: automountServiceAccountToken must be false", what)
	}
	if sc := spec.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		t.Errorf("%s: runAsNonRoot must be true", what)
	}
	for _, c := range spec.Containers {
		sc := c.SecurityContext
		if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
			sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
			sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
			t.Errorf("%s container %s: want a read-only root filesystem, no privilege escalation, all capabilities dropped", what, c.Name)
		}
	}
}

func namesPort(c corev1.Container, p intstr.IntOrString) bool {
	for _, cp := range c.Ports {
		if p.Type == intstr.String && p.StrVal == cp.Name || p.Type == intstr.Int && p.IntVal == cp.ContainerPort {
			return true
		}
	}
	return false
}

func sameSecret(a, b corev1.EnvVar) bool {
	return a.ValueFrom != nil && b.ValueFrom != nil && a.ValueFrom.SecretKeyRef != nil && b.ValueFrom.SecretKeyRef != nil &&
		a.ValueFrom.SecretKeyRef.Name == b.ValueFrom.SecretKeyRef.Name && a.ValueFrom.SecretKeyRef.Key == b.ValueFrom.SecretKeyRef.Key
}

func parseBytes(tb testing.TB, s string) int64 {
	tb.Helper()
	for suffix, mult := range map[string]int64{"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30} {
		if n, ok := strings.CutSuffix(s, suffix); ok {
			v, err := strconv.ParseInt(n, 10, 64)
			if err != nil {
				tb.Fatalf("%q: %v", s, err)
			}
			return v * mult
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		tb.Fatalf("%q: %v", s, err)
	}
	return v
}

var maxConnsFlag = regexp.MustCompile(`max_connections=(\d+)`)

// The demo overlay adds one Postgres that the server's Secret points at,
// with room for every replica's connections.
func TestDemoOverlay(t *testing.T) {
	o := load(t, "overlays/demo")
	if len(o.deployments) != 1 || len(o.statefulSets) != 1 || len(o.jobs) != 1 {
		t.Fatalf("demo has %d deployments, %d statefulsets, %d jobs", len(o.deployments), len(o.statefulSets), len(o.jobs))
	}
	d, pg := o.deployments[0], o.statefulSets[0]
	c := d.Spec.Template.Spec.Containers[0]
	ref := envOf(c)["DATABASE_URL"].ValueFrom.SecretKeyRef
	raw, ok := o.secrets[ref.Name][ref.Key]
	if !ok {
		t.Fatalf("the overlay generates no secret %s with key %s", ref.Name, ref.Key)
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	var svc *corev1.Service
	for _, s := range o.services {
		if s.Name == u.Hostname() {
			svc = s
		}
	}
	if svc == nil {
		t.Fatalf("DATABASE_URL names host %s, which is no Service", u.Hostname())
	}
	if !selects(svc.Spec.Selector, pg.Spec.Template.Labels) || len(svc.Spec.Ports) != 1 || strconv.Itoa(int(svc.Spec.Ports[0].Port)) != u.Port() {
		t.Errorf("Service %s does not lead to Postgres on port %s", svc.Name, u.Port())
	}
	pgc := pg.Spec.Template.Spec.Containers[0]
	pgEnv := envOf(pgc)
	if user := u.User.Username(); pgEnv["POSTGRES_USER"].Value != user || pgEnv["POSTGRES_DB"].Value != strings.TrimPrefix(u.Path, "/") {
		t.Errorf("DATABASE_URL user/database %s/%s, Postgres creates %s/%s", user, u.Path, pgEnv["POSTGRES_USER"].Value, pgEnv["POSTGRES_DB"].Value)
	}
	pw, _ := u.User.Password()
	pwRef := pgEnv["POSTGRES_PASSWORD"].ValueFrom.SecretKeyRef
	if o.secrets[pwRef.Name][pwRef.Key] != pw {
		t.Error("DATABASE_URL's password is not the one Postgres is created with")
	}
	// Connections: every replica at its pool size, plus the Job, fit.
	m := maxConnsFlag.FindStringSubmatch(strings.Join(pgc.Args, " "))
	if m == nil {
		t.Fatal("the demo Postgres does not set max_connections")
	}
	maxConns, _ := strconv.Atoi(m[1])
	perReplica, _ := strconv.Atoi(envOf(c)["LASTMILE_DB_MAX_CONNS"].Value)
	if need := int(o.hpas[0].Spec.MaxReplicas)*perReplica + 10; need > maxConns {
		t.Errorf("%d replicas x %d connections + 10 = %d, over max_connections %d", o.hpas[0].Spec.MaxReplicas, perReplica, need, maxConns)
	}
	// Postgres lets the server in.
	var allowed bool
	for _, np := range o.netpols {
		if !selects(np.Spec.PodSelector.MatchLabels, pg.Spec.Template.Labels) {
			continue
		}
		for _, r := range np.Spec.Ingress {
			for _, f := range r.From {
				allowed = allowed || f.PodSelector != nil && selects(f.PodSelector.MatchLabels, d.Spec.Template.Labels)
			}
		}
	}
	if !allowed {
		t.Error("no NetworkPolicy lets the server reach Postgres")
	}
	if _, ok := o.images["lastmile"]; !ok {
		t.Error("the overlay does not pin the lastmile image")
	}
}
