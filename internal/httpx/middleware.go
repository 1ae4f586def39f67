package httpx

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts HTTP requests and their latencies by route and status.
type Metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	inflight prometheus.Gauge
}

// NewMetrics registers the HTTP metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lastmile_http_requests_total",
			Help: "HTTP requests answered, by method, route pattern and status.",
		}, []string{"method", "route", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "lastmile_http_request_duration_seconds",
			Help:    "Time to answer an HTTP request, by method, route pattern and status.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"method", "route", "status"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "lastmile_http_requests_in_flight",
			Help: "HTTP requests being answered now (WebSockets included).",
		}),
	}
	reg.MustRegister(m.requests, m.latency, m.inflight)
	return m
}

// Observe is middleware that gives each request an id and a logger, logs it
// once when it ends, counts it, and turns a panic into a 500.
func (m *Metrics) Observe(logger *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			reqID := r.Header.Get("X-Request-Id")
			if reqID == "" || len(reqID) > 64 {
				reqID = newRequestID()
			}
			w.Header().Set("X-Request-Id", reqID)
			l := logger.With("request_id", reqID)
			r = r.WithContext(WithLogger(r.Context(), l))
			ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
			m.inflight.Inc()
			defer func() {
				m.inflight.Dec()
				if p := recover(); p != nil {
					if p == http.ErrAbortHandler {
						panic(p)
					}
					l.Error("panic in handler", "panic", fmt.Sprint(p), "method", r.Method, "path", r.URL.Path)
					if ww.Status() == 0 {
						Error(ww, r, fmt.Errorf("panic: %v", p))
					}
				}
				status := ww.Status()
				if status == 0 {
					status = http.StatusOK
				}
				route := "unmatched"
				if rc := chi.RouteContext(r.Context()); rc != nil && rc.RoutePattern() != "" {
					route = rc.RoutePattern()
				}
				elapsed := time.Since(start)
				s := strconv.Itoa(status)
				m.requests.WithLabelValues(r.Method, route, s).Inc()
				m.latency.WithLabelValues(r.Method, route, s).Observe(elapsed.Seconds())
				level := slog.LevelDebug
				if status >= 500 {
					level = slog.LevelWarn
				}
				l.Log(r.Context(), level, "http request", "method", r.Method, "route", route,
					"status", status, "duration_ms", float64(elapsed.Microseconds())/1000, "bytes", ww.BytesWritten())
			}()
			next.ServeHTTP(ww, r)
		})
	}
}

// LimitBody caps every request body at MaxBodyBytes, so that a handler
// that forgets to cap its own read still cannot be sent an endless body.
func LimitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > MaxBodyBytes {
			Error(w, r, errTooLarge)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
		next.ServeHTTP(w, r)
	})
}

// newRequestID returns 16 random hex characters.
func newRequestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
