package matching

import (
	"log/slog"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/lastmile/lastmile/internal/location"
)

// The queue never blocks the socket reader that offers to it: a newer
// approach of a queued driver replaces the older one, and when the queue is
// full the approach is dropped, and both are counted.
func TestOfferCoalescesAndDropsWithoutBlocking(t *testing.T) {
	s := New(nil, Config{QueueSize: 2}, nil, nil, nil, nil, nil, nil, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	d1, d2, d3 := uuid.New(), uuid.New(), uuid.New()
	t0 := time.Now()
	s.Offer(location.Approach{DriverID: d1, StationID: "hsr", At: t0})
	s.Offer(location.Approach{DriverID: d1, StationID: "btm", At: t0.Add(time.Second)}) // replaces
	s.Offer(location.Approach{DriverID: d2, StationID: "hsr", At: t0})
	done := make(chan struct{})
	go func() {
		s.Offer(location.Approach{DriverID: d3, StationID: "hsr", At: t0}) // queue full: dropped
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Offer blocked on a full queue")
	}
	if got := testutil.ToFloat64(s.m.replaced); got != 1 {
		t.Errorf("replaced = %v, want 1", got)
	}
	if got := testutil.ToFloat64(s.m.dropped); got != 1 {
		t.Errorf("dropped = %v, want 1", got)
	}
	if got := testutil.ToFloat64(s.m.queue); got != 2 {
		t.Errorf("queue length = %v, want 2", got)
	}
	q, ok := s.take(<-s.ready)
	if !ok || q.DriverID != d1 || q.StationID != "btm" {
		t.Fatalf("first taken = %+v, want d1's newer approach (btm)", q)
	}
	if q2, ok := s.take(<-s.ready); !ok || q2.DriverID != d2 {
		t.Fatalf("second taken = %+v, want d2", q2)
	}
}

// One worker at a time matches at a station: others leave their approach
// behind it (the newest per driver), and it runs them in order before
// releasing the station.
func TestApproachesWaitBehindTheirStation(t *testing.T) {
	s := New(nil, Config{}, nil, nil, nil, nil, nil, nil, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	d1, d2, d3 := uuid.New(), uuid.New(), uuid.New()
	t0 := time.Now()
	at := func(d uuid.UUID, station string, sec int) queued {
		return queued{Approach: location.Approach{DriverID: d, StationID: station, At: t0.Add(time.Duration(sec) * time.Second)}, offered: t0}
	}
	if !s.claim(at(d1, "hsr", 0)) {
		t.Fatal("the first approach at hsr did not get the station")
	}
	if !s.claim(at(d3, "btm", 0)) {
		t.Fatal("an approach at another station waited behind hsr")
	}
	if s.claim(at(d2, "hsr", 0)) || s.claim(at(d3, "hsr", 0)) || s.claim(at(d2, "hsr", 1)) {
		t.Fatal("an approach at a busy station was not left behind its match")
	}
	if got := testutil.ToFloat64(s.m.queue); got != 2 {
		t.Errorf("queue length = %v, want 2 behind hsr", got)
	}
	if q, ok := s.next("hsr"); !ok || q.DriverID != d2 || !q.At.Equal(t0.Add(time.Second)) {
		t.Fatalf("next at hsr = %+v, want d2's newer approach", q)
	}
	if q, ok := s.next("hsr"); !ok || q.DriverID != d3 {
		t.Fatalf("next at hsr = %+v, want d3", q)
	}
	if _, ok := s.next("hsr"); ok {
		t.Fatal("next returned an approach after the last")
	}
	if !s.claim(at(d1, "hsr", 2)) {
		t.Fatal("hsr was not released after its last match")
	}
}
