package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lastmile/lastmile/internal/postgres"
)

// cluster is LastMile as an operator runs it: replicas as separate
// processes of the real binary, HAProxy in front checking /readyz, and a
// Postgres of its own (the private launcher's, so stopping it touches
// nothing else on the machine).
type cluster struct {
	tb     testing.TB
	dir    string
	bin    string
	pgOpts postgres.PrivateOptions
	pg     *postgres.Private
	dbURL  string
	lbURL  string
	lb     *exec.Cmd
	lbDone chan struct{}

	mu       sync.Mutex
	replicas []*replicaProc
}

// replicaProc is one running (or stopped) lastmile serve process.
type replicaProc struct {
	name        string
	port        int
	metricsPort int
	cmd         *exec.Cmd
	done        chan struct{}
}

// clusterFlags are the replicas' settings: drained quickly, the sign-up
// limits off (the simulation signs hundreds of users up from one address),
// and the simulated world's clocks (it runs 6 times faster than real time,
// and the server refuses speeds over 1000 km/h).
var clusterFlags = []string{
	"--drain-delay", "1s", "--shutdown-timeout", "5s", "--log-format", "json", "--log-level", "warn",
	"--signup-limit", "0", "--signin-limit", "0",
	"--max-speed-kmh", "1000", "--no-show-wait", "30s", "--match-grace", "30s", "--request-expiry", "3m", "--approach-every", "500ms",
}

// newCluster builds the binary and starts Postgres, n replicas and HAProxy.
func newCluster(tb testing.TB, n int) *cluster {
	tb.Helper()
	haproxy, err := exec.LookPath("haproxy")
	if err != nil {
		if _, statErr := os.Stat("/usr/sbin/haproxy"); statErr != nil {
			tb.Fatal("the multi-replica test needs HAProxy: apt-get install haproxy (.ci/run does)")
		}
		haproxy = "/usr/sbin/haproxy"
	}
	dir, err := os.MkdirTemp("", "lastmile-cluster-")
	if err != nil {
		tb.Fatal(err)
	}
	// Postgres, started as another user when we are root, must reach its folder.
	if err := os.Chmod(dir, 0o711); err != nil {
		tb.Fatal(err)
	}
	c := &cluster{tb: tb, dir: dir, bin: filepath.Join(dir, "lastmile")}
	tb.Cleanup(c.close)

	build := exec.Command("go", "build", "-o", c.bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		tb.Fatalf("go build: %v\n%s", err, out)
	}

	sock, err := os.MkdirTemp("", "lm-sock-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(sock) })
	c.pgOpts = postgres.PrivateOptions{Dir: filepath.Join(dir, "pg"), Database: "lastmile", Fast: true, SocketDir: sock}
	c.startPostgres()
	c.dbURL = c.pg.URL

	for i := range n {
		r := &replicaProc{name: fmt.Sprintf("r%d", i+1), port: freePort(tb), metricsPort: freePort(tb)}
		c.replicas = append(c.replicas, r)
		c.start(r)
	}
	for _, r := range c.replicas {
		c.waitReady(r, time.Minute)
	}

	lbPort := freePort(tb)
	cfg := fmt.Sprintf(`global
    maxconn 4000
defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout tunnel 75s
    timeout http-request 10s
    option http-server-close
    option forwardfor
frontend api
    bind 127.0.0.1:%d
    default_backend lastmile
backend lastmile
    balance leastconn
    option httpchk GET /readyz
    http-check expect status 200
    default-server inter 500ms fall 2 rise 1
`, lbPort)
	for _, r := range c.replicas {
		cfg += fmt.Sprintf("    server %s 127.0.0.1:%d check\n", r.name, r.port)
	}
	cfgPath := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		tb.Fatal(err)
	}
	if out, err := exec.Command(haproxy, "-c", "-q", "-f", cfgPath).CombinedOutput(); err != nil {
		tb.Fatalf("haproxy -c: %v\n%s", err, out)
	}
	c.lb = exec.Command(haproxy, "-db", "-f", cfgPath)
	c.lb.Stdout, c.lb.Stderr = logFile(tb, filepath.Join(dir, "haproxy.log")), logFile(tb, filepath.Join(dir, "haproxy.log"))
	if err := c.lb.Start(); err != nil {
		tb.Fatal(err)
	}
	c.lbURL = fmt.Sprintf("http://127.0.0.1:%d", lbPort)
	lbDone := make(chan struct{})
	go func() { // owned by the cluster: ends when HAProxy exits
		_ = c.lb.Wait()
		close(lbDone)
	}()
	c.lbDone = lbDone
	deadline := time.Now().Add(30 * time.Second)
	for !ready(c.lbURL) {
		select {
		case <-lbDone:
			log, _ := os.ReadFile(filepath.Join(dir, "haproxy.log"))
			tb.Fatalf("HAProxy exited: %s", log)
		default:
		}
		if time.Now().After(deadline) {
			tb.Fatal("HAProxy never answered /readyz with 200")
		}
		time.Sleep(50 * time.Millisecond)
	}
	return c
}

func (c *cluster) startPostgres() {
	c.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pg, err := postgres.StartPrivate(ctx, c.pgOpts)
	if err != nil {
		c.tb.Fatal(err)
	}
	c.pg = pg
}

// stopPostgres stops Postgres cleanly (as an operator's restart would).
func (c *cluster) stopPostgres() {
	if err := c.pg.Stop(); err != nil {
		c.tb.Errorf("stop postgres: %v", err)
	}
}

func logFile(tb testing.TB, path string) *os.File {
	tb.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { f.Close() })
	return f
}

func freePort(tb testing.TB) int {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func ready(base string) bool {
	cl := http.Client{Timeout: 2 * time.Second}
	resp, err := cl.Get(base + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func (r *replicaProc) url() string { return fmt.Sprintf("http://127.0.0.1:%d", r.port) }

// start runs r's process (again).
func (c *cluster) start(r *replicaProc) {
	c.tb.Helper()
	args := append([]string{"serve", "--addr", fmt.Sprintf("127.0.0.1:%d", r.port), "--metrics-addr", fmt.Sprintf("127.0.0.1:%d", r.metricsPort),
		"--database", c.dbURL}, clusterFlags...)
	cmd := exec.Command(c.bin, args...)
	cmd.Env = append(os.Environ(), "DATABASE_URL=")
	out := logFile(c.tb, filepath.Join(c.dir, r.name+".log"))
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		c.tb.Fatal(err)
	}
	done := make(chan struct{})
	go func() { // owned by the cluster: ends when the process exits
		_ = cmd.Wait()
		close(done)
	}()
	c.mu.Lock()
	r.cmd, r.done = cmd, done
	c.mu.Unlock()
}

// waitReady waits until r answers /readyz with 200 and returns how long it took.
func (c *cluster) waitReady(r *replicaProc, limit time.Duration) time.Duration {
	c.tb.Helper()
	start := time.Now()
	for !ready(r.url()) {
		select {
		case <-r.done:
			log, _ := os.ReadFile(filepath.Join(c.dir, r.name+".log"))
			c.tb.Fatalf("replica %s exited: %s", r.name, log)
		default:
		}
		if time.Since(start) > limit {
			c.tb.Fatalf("replica %s not ready after %v (log: %s)", r.name, limit, filepath.Join(c.dir, r.name+".log"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

// kill sends SIGKILL to r and waits for it to be gone.
func (c *cluster) kill(r *replicaProc) {
	_ = r.cmd.Process.Signal(syscall.SIGKILL)
	<-r.done
}

// stop sends SIGTERM and returns how long r took to exit, and its exit code.
func (c *cluster) stop(r *replicaProc) (time.Duration, int) {
	start := time.Now()
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(30 * time.Second):
		c.tb.Errorf("replica %s did not exit within 30 s of SIGTERM", r.name)
		c.kill(r)
	}
	return time.Since(start), r.cmd.ProcessState.ExitCode()
}

func (c *cluster) close() {
	for _, r := range c.replicas {
		if r.cmd != nil {
			select {
			case <-r.done:
			default:
				c.stop(r)
			}
		}
	}
	if c.lb != nil && c.lb.Process != nil {
		_ = c.lb.Process.Kill()
		<-c.lbDone
	}
	if c.pg != nil {
		_ = c.pg.Stop()
	}
	if !c.tb.Failed() {
		os.RemoveAll(c.dir)
	} else {
		c.tb.Logf("cluster logs kept in %s", c.dir)
	}
}

// scrape sums a metric (all label sets) over the running replicas.
func (c *cluster) scrape(name string) float64 {
	var sum float64
	for _, r := range c.replicas {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", r.metricsPort))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if strings.HasPrefix(line, name+" ") || strings.HasPrefix(line, name+"{") {
				if v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64); err == nil {
					sum += v
				}
			}
		}
		resp.Body.Close()
	}
	return sum
}

// apiClient speaks to the balancer as one user.
type apiClient struct {
	base, token string
	hc          *http.Client
}

// call sends one request; body may be nil. It returns the status (0 on a
// network error) and decodes a 2xx answer into out.
func (a *apiClient) call(method, path string, body any, out any, key string) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = strings.NewReader(string(b))
	}
	req, err := http.NewRequest(method, a.base+path, rd)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 == 2 && out != nil {
		return resp.StatusCode, json.NewDecoder(resp.Body).Decode(out)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// procCPU returns the CPU seconds (user + system) pid has used.
func procCPU(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(fields) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(fields[11], 64)
	st, _ := strconv.ParseFloat(fields[12], 64)
	return (ut + st) / 100 // USER_HZ
}

// childrenCPU returns the CPU seconds of pid's live children (Postgres
// backends are children of the postmaster).
func childrenCPU(pid int) float64 {
	entries, _ := os.ReadDir("/proc")
	var sum float64
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", child))
		if err != nil {
			continue
		}
		s := string(b)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		if len(fields) > 1 && fields[1] == strconv.Itoa(pid) {
			sum += procCPU(child)
		}
	}
	return sum
}
