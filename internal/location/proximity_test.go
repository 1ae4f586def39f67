package location

import (
	"maps"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/lastmile/lastmile/internal/geo"
)

func TestNorthFixture(t *testing.T) {
	for _, m := range []float64{-3000, -1, 0, 49, 50, 100, 200, 500, 501, 3000} {
		if got := geo.DistanceM(north(base, m), base); math.Abs(got-math.Abs(m)) > 1e-6 {
			t.Errorf("north(base, %v) lies %.9f m from base", m, got)
		}
	}
}

func TestGeometryEvaluate(t *testing.T) {
	var g Geometry
	g.defaults() // pass within 100 m, passed beyond 200 m
	// A at base, B 3 km north of it; the driver heads north.
	a := Station{ID: "A", Point: base, RadiusM: 500}
	b := Station{ID: "B", Point: north(base, 3000), RadiusM: 500}
	wideA := Station{ID: "A", Point: base, RadiusM: 2000}
	wideB := Station{ID: "B", Point: north(base, 3000), RadiusM: 3000}
	edge := Station{ID: "E", Point: base, RadiusM: geo.DistanceM(north(base, 500), base)}

	type step struct {
		m           float64 // metres north of base
		approaching string  // "" for none
		passed      []string
		reached     []string // the reached map afterwards
	}
	tests := []struct {
		name    string
		ahead   []Station
		reached []string
		steps   []step
	}{
		{"outside every radius", []Station{a, b}, nil, []step{
			{m: -3000}, {m: 1500}, {m: 6000},
		}},
		{"inside the radius of the second station only", []Station{a, b}, nil, []step{
			{m: 2700, approaching: "B"},
		}},
		{"inside two radii: the first in route order wins", []Station{wideA, wideB}, nil, []step{
			{m: 1900, approaching: "A"}, // 1100 m from B, closer than A
		}},
		{"exactly on the radius", []Station{edge}, nil, []step{
			{m: 500, approaching: "E"},
		}},
		{"one metre outside the radius", []Station{edge}, nil, []step{
			{m: 501},
		}},
		{"within the pass radius records the station reached", []Station{a, b}, nil, []step{
			{m: -90, approaching: "A", reached: []string{"A"}},
		}},
		{"between pass and leave radius is not passed yet", []Station{a, b}, []string{"A"}, []step{
			{m: 150, approaching: "A", reached: []string{"A"}},
			{m: 200, approaching: "A", reached: []string{"A"}},
		}},
		{"reached then beyond the leave radius is passed", []Station{a, b}, nil, []step{
			{m: -50, approaching: "A", reached: []string{"A"}},
			{m: 300, passed: []string{"A"}}, // still inside A's 500 m radius
		}},
		{"a passed station gives way to the next one", []Station{a, wideB}, []string{"A"}, []step{
			{m: 300, approaching: "B", passed: []string{"A"}},
		}},
		{"beyond the leave radius without reaching is not passed", []Station{a, b}, nil, []step{
			{m: -400, approaching: "A"},
			{m: 300, approaching: "A"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ahead := slices.Clone(tt.ahead)
			reached := map[string]bool{}
			for _, id := range tt.reached {
				reached[id] = true
			}
			for i, s := range tt.steps {
				pos := north(base, s.m)
				p := g.Evaluate(pos, ahead, reached)
				got := ""
				if p.Approaching != nil {
					got = p.Approaching.ID
					if want := geo.DistanceM(pos, p.Approaching.Point); p.DistanceM != want {
						t.Errorf("step %d: DistanceM = %v, want %v", i, p.DistanceM, want)
					}
				}
				if got != s.approaching {
					t.Errorf("step %d at %v m: approaching %q, want %q", i, s.m, got, s.approaching)
				}
				if !slices.Equal(p.Passed, s.passed) {
					t.Errorf("step %d at %v m: passed %v, want %v", i, s.m, p.Passed, s.passed)
				}
				var gotReached []string
				for id := range reached {
					gotReached = append(gotReached, id)
				}
				slices.Sort(gotReached)
				if !slices.Equal(gotReached, s.reached) {
					t.Errorf("step %d at %v m: reached %v, want %v", i, s.m, gotReached, s.reached)
				}
				for _, id := range p.Passed { // as the caller does
					ahead = removeStation(ahead, id)
				}
			}
		})
	}
}

func TestGeometryETA(t *testing.T) {
	var g Geometry
	g.defaults() // floor 3 m/s
	tests := []struct {
		name      string
		distanceM float64
		speedMps  float64
		want      time.Duration
	}{
		{"speed above the floor is used", 300, 10, 30 * time.Second},
		{"speed at the floor", 300, 3, 100 * time.Second},
		{"slower than the floor uses the floor", 300, 1, 100 * time.Second},
		{"stopped uses the floor", 300, 0, 100 * time.Second},
		{"negative speed uses the floor", 300, -5, 100 * time.Second},
		{"NaN speed uses the floor", 300, math.NaN(), 100 * time.Second},
		{"infinite speed uses the floor", 300, math.Inf(1), 100 * time.Second},
		{"at the station", 0, 10, 0},
		{"at the station and stopped", 0, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := g.ETA(t0, tt.distanceM, tt.speedMps); !got.Equal(t0.Add(tt.want)) {
				t.Fatalf("ETA(%v m, %v m/s) = +%v, want +%v", tt.distanceM, tt.speedMps, got.Sub(t0), tt.want)
			}
		})
	}
}

// Evaluate's shortcut (skipping the exact distance to stations far north
// or south) changes no answer: it agrees with the exact distance to every
// station, for positions all around the stations.
func TestGeometryEvaluateShortcutAgreesWithExactDistance(t *testing.T) {
	var g Geometry
	g.defaults()
	rnd := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		ahead := make([]Station, 5)
		for i := range ahead {
			ahead[i] = Station{ID: string(rune('a' + i)), Point: geo.Point{Lat: base.Lat + rnd.Float64()*0.02 - 0.01, Lng: base.Lng + rnd.Float64()*0.02 - 0.01},
				RadiusM: 100 + rnd.Float64()*900}
		}
		reached := map[string]bool{}
		for _, st := range ahead {
			reached[st.ID] = rnd.IntN(2) == 0
		}
		pos := geo.Point{Lat: base.Lat + rnd.Float64()*0.03 - 0.015, Lng: base.Lng + rnd.Float64()*0.03 - 0.015}

		want := Proximity{}
		wantReached := map[string]bool{}
		for k, v := range reached {
			if v {
				wantReached[k] = true
			}
		}
		for i := range ahead {
			st := &ahead[i]
			d := geo.DistanceM(pos, st.Point)
			if d <= g.PassRadiusM {
				wantReached[st.ID] = true
			} else if wantReached[st.ID] && d > g.LeaveRadiusM {
				want.Passed = append(want.Passed, st.ID)
				delete(wantReached, st.ID)
				continue
			}
			if want.Approaching == nil && d <= st.RadiusM {
				want.Approaching, want.DistanceM = st, d
			}
		}
		got := g.Evaluate(pos, ahead, reached)
		for k, v := range reached {
			if !v {
				delete(reached, k)
			}
		}
		if !reflect.DeepEqual(got, want) || !maps.Equal(reached, wantReached) {
			t.Fatalf("at %v: got %+v reached %v, want %+v reached %v", pos, got, reached, want, wantReached)
		}
	}
}
