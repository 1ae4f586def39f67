package location

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/lastmile/lastmile/internal/identity"
	"github.com/prometheus/client_golang/prometheus"
)

// benchAhead is a route of 20 stations around base: the 11th 300 m south
// of it with a 500 m radius, the others kilometres away.
func benchAhead() []Station {
	ahead := make([]Station, 20)
	for i := range ahead {
		ahead[i] = Station{ID: fmt.Sprintf("st-%02d", i), Point: north(base, float64(5000+1000*i)), RadiusM: 500}
	}
	ahead[10].Point = north(base, -300)
	return ahead
}

// putDigits writes v into b as len(b) decimal digits, zero padded.
func putDigits(b []byte, v int64) {
	for i := len(b) - 1; i >= 0; i-- {
		b[i] = byte('0' + v%10)
		v /= 10
	}
}

// BenchmarkFix is one socket fix of a driver on a 20-station route:
// decoding, plausibility, proximity and (rarely) an approach or a
// publication.
func BenchmarkFix(b *testing.B) {
	day := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	now := day
	driver := uuid.New()
	routes := &fakeRoutes{routes: map[uuid.UUID]Route{driver: {
		ID: uuid.New(), DestinationAreaID: "area-1", SeatsFree: 3, Ahead: benchAhead(), Riders: []uuid.UUID{uuid.New()},
	}}}
	s := New(nil, Config{FixRate: 1e12, FixBurst: 1 << 30}, routes, &fakeSink{}, fakePublisher{},
		slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	s.now = func() time.Time { return now }
	ctx := context.Background()
	p := identity.Principal{UserID: driver, Role: identity.RoleDriver}

	// The fix stays put; its time moves on 1 µs a fix, written in place.
	msg := []byte(fmt.Sprintf(`{"type":"location","lat":%.7f,"lng":%.7f,"at":"2025-03-01T00:00:00.000000Z","speed_mps":8.5,"heading":12}`,
		base.Lat, base.Lng))
	clock := msg[strings.Index(string(msg), "T00:")+1:]
	setAt := func(us int64) {
		sec := us / 1e6
		putDigits(clock[0:2], sec/3600)
		putDigits(clock[3:5], sec/60%60)
		putDigits(clock[6:8], sec%60)
		putDigits(clock[9:15], us%1e6)
		now = day.Add(time.Duration(us) * time.Microsecond)
	}

	setAt(0)
	if err := s.HandleMessage(ctx, p, json.RawMessage(msg)); err != nil {
		b.Fatal(err)
	}
	s.refreshRoutes(ctx, true)
	if s.state(driver).approaching != "st-10" {
		b.Fatal("the driver does not approach st-10")
	}

	b.ReportAllocs()
	var us int64
	for b.Loop() {
		us++
		setAt(us)
		if err := s.HandleMessage(ctx, p, json.RawMessage(msg)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEvaluate is proximity alone, against 20 stations ahead.
func BenchmarkEvaluate(b *testing.B) {
	var g Geometry
	g.defaults()
	ahead := benchAhead()
	reached := map[string]bool{}
	b.ReportAllocs()
	for b.Loop() {
		if p := g.Evaluate(base, ahead, reached); p.Approaching == nil {
			b.Fatal("no approach")
		}
	}
}
