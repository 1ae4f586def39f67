package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/lastmile/lastmile/internal/httpx"
	"github.com/lastmile/lastmile/internal/postgres"
)

func runServe(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var cfg config
	fs := newFlagSet("serve", "lastmile [serve] [flags]", stderr)
	cfg.registerServe(fs)
	fs.Usage = func() { printOverview(stderr) }
	if err := cfg.parse(fs, args, getenv); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("serve takes no arguments, got %q", fs.Args())
	}
	logger, err := cfg.newLogger(stderr)
	if err != nil {
		return err
	}
	return serve(ctx, cfg, logger, stdout)
}

// serve runs the server until ctx is cancelled, then shuts down in order:
// readiness turns 503, the listener closes and in-flight requests finish,
// long-lived connections are told to go away, background work stops, and
// the private Postgres (if any) stops last.
func serve(ctx context.Context, cfg config, logger *slog.Logger, stdout io.Writer) (err error) {
	started := time.Now()
	d, err := cfg.openDatabase(ctx, logger, int32(cfg.maxConns))
	if err != nil {
		return err
	}
	defer func() {
		if closeErr := d.close(); closeErr != nil && err == nil {
			err = closeErr
		}
	}()
	pool, schema := d.pool, d.schema

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		postgres.NewPoolCollector(pool))
	health := &health{pool: pool, logger: logger, now: time.Now}
	a, err := newApp(cfg, pool, logger, reg)
	if err != nil {
		return err
	}
	if err := a.start(ctx); err != nil {
		return err
	}

	r := a.router(health, reg, logger)

	var metricsSrv *http.Server
	var metricsLn net.Listener
	if cfg.metricsAddr != "" {
		if metricsLn, err = net.Listen("tcp", cfg.metricsAddr); err != nil {
			return fmt.Errorf("listen on %s (--metrics-addr): %w", cfg.metricsAddr, err)
		}
		metricsSrv = metricsServer(reg, logger)
		logger.Info("metrics listening", "addr", metricsLn.Addr().String())
		fmt.Fprintf(stdout, "lastmile metrics on http://%s/metrics\n", metricsLn.Addr())
	}
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		if metricsLn != nil {
			metricsLn.Close()
		}
		return fmt.Errorf("listen on %s: %w", cfg.addr, err)
	}
	srv := &http.Server{
		Handler:           r,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	logger.Info("lastmile listening", "addr", ln.Addr().String(), "schema_version", schema,
		"version", buildVersion(), "startup_ms", time.Since(started).Milliseconds())
	fmt.Fprintf(stdout, "lastmile listening on http://%s\n", ln.Addr())
	if cfg.onListen != nil {
		cfg.onListen(ln.Addr().String())
	}

	g, gctx := errgroup.WithContext(ctx)
	for _, runner := range a.runners {
		g.Go(func() error { return runner(gctx) })
	}
	g.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serve http: %w", err)
		}
		return nil
	})
	if metricsSrv != nil {
		g.Go(func() error {
			if err := metricsSrv.Serve(metricsLn); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("serve metrics: %w", err)
			}
			return nil
		})
	}
	g.Go(func() error {
		<-gctx.Done()
		health.draining.Store(true)
		logger.Info("shutting down: readiness is now 503", "drain_delay", cfg.drainDelay)
		if cfg.drainDelay > 0 {
			time.Sleep(cfg.drainDelay)
		}
		shCtx, cancel := context.WithTimeout(context.Background(), cfg.shutdownTimeout)
		defer cancel()
		// WebSockets are hijacked connections, which Shutdown neither
		// tracks nor waits for: tell them to go away alongside, and wait
		// for both, so that each gets its 1001 before run returns.
		var sockets sync.WaitGroup
		sockets.Go(func() { a.goAway(shCtx) })
		if err := srv.Shutdown(shCtx); err != nil {
			logger.Warn("in-flight requests cut off at the shutdown timeout", "err", err)
			srv.Close()
		}
		sockets.Wait()
		if shCtx.Err() != nil {
			logger.Warn("sockets cut off at the shutdown timeout")
		}
		if metricsSrv != nil {
			// Scrapes are short; the last one may see the final counts.
			if err := metricsSrv.Shutdown(shCtx); err != nil {
				metricsSrv.Close()
			}
		}
		return nil
	})
	err = g.Wait()
	logger.Info("stopped")
	return err
}

// router is the whole public HTTP surface: operations endpoints and every
// domain. /metrics is not on it; see metricsServer.
func (a *app) router(health *health, reg *prometheus.Registry, logger *slog.Logger) *chi.Mux {
	r := chi.NewRouter()
	// middleware.GetHead: every GET route also answers HEAD (RFC 9110), as
	// caches, link checkers and load balancers expect.
	r.Use(middleware.GetHead, httpx.NewMetrics(reg).Observe(logger), httpx.SecureHeaders, httpx.LimitBody, httpx.ClientAddr(a.trustedProxies),
		httpx.Timeout(30*time.Second, "/api/v1/ws"))
	r.Get("/healthz", health.live)
	r.Get("/readyz", health.ready)
	a.mount(r)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		httpx.Error(w, r, errNoRoute)
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Allow", strings.Join(allowedMethods(r, req.URL.Path), ", "))
		httpx.Error(w, req, errMethod)
	})
	return r
}

// allowedMethods lists the methods routes serves at path, asking the router
// itself, so the Allow header cannot drift from the routes.
func allowedMethods(routes chi.Routes, path string) []string {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions} {
		if routes.Match(chi.NewRouteContext(), m, path) {
			allow = append(allow, m)
		}
		if m == http.MethodGet && len(allow) == 1 && !routes.Match(chi.NewRouteContext(), http.MethodHead, path) {
			allow = append(allow, http.MethodHead) // served by middleware.GetHead
		}
	}
	return allow
}

// metricsServer serves /metrics alone, on the operators' address: what a
// Prometheus target exposes (runtime, queue depths, route names) is not for
// the public.
func metricsServer(reg *prometheus.Registry, logger *slog.Logger) *http.Server {
	r := chi.NewRouter()
	r.Use(httpx.SecureHeaders)
	r.Method(http.MethodGet, "/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	return &http.Server{
		Handler:           r,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
}

// health answers the liveness and readiness probes.
type health struct {
	pool     *pgxpool.Pool
	logger   *slog.Logger
	now      func() time.Time
	draining atomic.Bool

	// The write probe's last answer, kept writeProbeEvery so that probes
	// from every load balancer do not each cost a transaction.
	mu          sync.Mutex
	probedAt    time.Time
	probeResult error
}

// writeProbeEvery is how long a write probe's answer is reused.
const writeProbeEvery = 2 * time.Second

// live answers 200 while the process runs.
func (h *health) live(w http.ResponseWriter, r *http.Request) {
	httpx.JSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// ready answers 200 only when Postgres answers and the schema is the one
// this binary needs, and 503 with the reason otherwise or while draining.
func (h *health) ready(w http.ResponseWriter, r *http.Request) {
	notReady := func(reason string) {
		httpx.JSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "reason": reason})
	}
	if h.draining.Load() {
		notReady("shutting down")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	// The reply says what is wrong; the details (addresses, driver errors)
	// go to the log only.
	applied, dirty, err := postgres.SchemaVersion(ctx, h.pool)
	if err != nil {
		h.logger.Warn("not ready: database unreachable", "err", err)
		notReady("database unreachable")
		return
	}
	want, err := postgres.LatestVersion()
	if err != nil {
		h.logger.Error("not ready: embedded migrations unreadable", "err", err)
		notReady("schema version unknown")
		return
	}
	if dirty || applied < want {
		h.logger.Warn("not ready: migrations not applied", "schema_version", applied, "dirty", dirty, "want", want)
		notReady("migrations not applied: the database schema is older than this version")
		return
	}
	if err := h.canWrite(ctx); err != nil {
		notReady("database refuses writes")
		return
	}
	httpx.JSON(w, http.StatusOK, map[string]any{"status": "ready", "schema_version": applied})
}

// canWrite reports whether this replica can write to Postgres (a read-only
// server, a standby after a fail-over, a full disk all fail), probing at
// most once every writeProbeEvery. The cause is logged, not shown.
func (h *health) canWrite(ctx context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.now()
	if !h.probedAt.IsZero() && now.Sub(h.probedAt) < writeProbeEvery {
		return h.probeResult
	}
	err := postgres.ProbeWrite(ctx, h.pool)
	if err != nil {
		h.logger.Warn("not ready: database refuses writes", "err", err)
	}
	h.probedAt, h.probeResult = now, err
	return err
}
