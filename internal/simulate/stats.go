package simulate

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// stats counts what the simulated users did and saw. Counters are safe for
// every agent's goroutines.
type stats struct {
	fixesSent, fixesAcked                         atomic.Int64
	routes, requests, matches, cancels            atomic.Int64
	arrivals, pickups, noShows, starts, dropOffs  atomic.Int64
	routesCompleted, routesCancelled, eventsTaken atomic.Int64

	mu       sync.Mutex
	errors   map[string]int64
	rejected map[string]int64
	match    samples
	delivery samples
}

func newStats() *stats {
	return &stats{errors: map[string]int64{}, rejected: map[string]int64{},
		match: samples{max: 200_000}, delivery: samples{max: 200_000}}
}

// errorf counts one error of the kind named by format and args.
func (s *stats) errorf(format string, args ...any) {
	k := fmt.Sprintf(format, args...)
	s.mu.Lock()
	s.errors[k]++
	s.mu.Unlock()
}

func (s *stats) errorCount() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for _, v := range s.errors {
		n += v
	}
	return n
}

func (s *stats) fixRejected(code string) {
	s.mu.Lock()
	s.rejected[code]++
	s.mu.Unlock()
}

func (s *stats) matchLatency(d time.Duration) {
	s.mu.Lock()
	s.match.add(float64(d.Microseconds()) / 1000)
	s.mu.Unlock()
}

func (s *stats) deliveryLatency(d time.Duration) {
	s.mu.Lock()
	s.delivery.add(float64(d.Microseconds()) / 1000)
	s.mu.Unlock()
}

// samples keeps up to max values: all of them, or past that a uniform
// reservoir sample, plus the exact count and maximum.
type samples struct {
	xs   []float64
	n    int
	max  int
	peak float64
	rng  *rand.Rand
}

func (s *samples) add(x float64) {
	s.n++
	s.peak = math.Max(s.peak, x)
	if len(s.xs) < s.max {
		s.xs = append(s.xs, x)
		return
	}
	if s.rng == nil {
		s.rng = rand.New(rand.NewPCG(1, 2))
	}
	if i := s.rng.IntN(s.n); i < s.max {
		s.xs[i] = x
	}
}

// Quantiles summarises a latency distribution in milliseconds.
type Quantiles struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50"`
	P95   float64 `json:"p95"`
	P99   float64 `json:"p99"`
	Max   float64 `json:"max"`
}

func (s *samples) quantiles() Quantiles {
	xs := slices.Clone(s.xs)
	sort.Float64s(xs)
	q := Quantiles{Count: s.n, Max: round(s.peak)}
	if len(xs) > 0 {
		q.P50, q.P95, q.P99 = round(percentile(xs, 0.5)), round(percentile(xs, 0.95)), round(percentile(xs, 0.99))
	}
	return q
}

func round(x float64) float64 { return math.Round(x*10) / 10 }

// percentile is the nearest-rank percentile of sorted xs.
func percentile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	k := int(math.Ceil(q*float64(len(xs)))) - 1
	return xs[max(0, min(k, len(xs)-1))]
}

func (q Quantiles) String() string {
	if q.Count == 0 {
		return "none"
	}
	return fmt.Sprintf("p50 %.1f ms, p95 %.1f ms, p99 %.1f ms, max %.1f ms (%d)", q.P50, q.P95, q.P99, q.Max, q.Count)
}

func copyMap(m map[string]int64) map[string]int64 {
	out := make(map[string]int64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// progress writes a status line every second on a terminal (rewriting
// itself), or a plain line every five seconds otherwise, until stop is
// closed.
func (s *stats) progress(w io.Writer, tty bool, started time.Time, total time.Duration, stop <-chan struct{}) {
	every := 5 * time.Second
	if tty {
		every = time.Second
	}
	tk := time.NewTicker(every)
	defer tk.Stop()
	prev, prevAt := s.fixesSent.Load(), time.Now()
	for {
		select {
		case <-stop:
			if tty {
				fmt.Fprint(w, "\r\033[K")
			}
			return
		case <-tk.C:
		}
		now := time.Now()
		sent := s.fixesSent.Load()
		rate := float64(sent-prev) / now.Sub(prevAt).Seconds()
		prev, prevAt = sent, now
		elapsed := now.Sub(started).Truncate(time.Second)
		of := ""
		if total > 0 {
			of = "/" + total.String()
		}
		line := fmt.Sprintf("simulate: %s%s  fixes/s %.0f  requests %d  matches %d  errors %d",
			elapsed, of, rate, s.requests.Load(), s.matches.Load(), s.errorCount())
		if tty {
			fmt.Fprint(w, "\r\033[K"+line)
		} else {
			fmt.Fprintln(w, line)
		}
	}
}

// topKinds lists a count map, biggest first.
func topKinds(m map[string]int64) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return m[keys[i]] > m[keys[j]] || (m[keys[i]] == m[keys[j]] && keys[i] < keys[j]) })
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}
