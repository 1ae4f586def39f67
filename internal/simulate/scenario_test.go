package simulate

import (
	"reflect"
	"testing"
	"time"

	"github.com/lastmile/lastmile/internal/geo"
)

func catalog() []Station {
	return []Station{
		{ID: "silkboard", Point: geo.Point{Lat: 12.9165, Lng: 77.6238}, RadiusM: 800,
			Areas: []Area{{"madiwala", geo.Point{Lat: 12.9188, Lng: 77.6176}}}},
		{ID: "hsr", Point: geo.Point{Lat: 12.9121, Lng: 77.6387}, RadiusM: 800,
			Areas: []Area{{"kudlu-gate", geo.Point{Lat: 12.8936, Lng: 77.6513}}, {"agara", geo.Point{Lat: 12.9215, Lng: 77.651}}}},
		{ID: "btm", Point: geo.Point{Lat: 12.9122, Lng: 77.6092}, RadiusM: 800,
			Areas: []Area{{"jayadeva", geo.Point{Lat: 12.9189, Lng: 77.5956}}}},
		{ID: "no-areas", Point: geo.Point{Lat: 12.95, Lng: 77.6}, RadiusM: 800},
	}
}

func TestScenarioSameSeedSamePlans(t *testing.T) {
	a := NewScenario(catalog(), 20, 40, 10*time.Minute, 7)
	b := NewScenario(catalog(), 20, 40, 10*time.Minute, 7)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("the same seed drew different scenarios")
	}
	if c := NewScenario(catalog(), 20, 40, 10*time.Minute, 8); reflect.DeepEqual(a, c) {
		t.Fatal("another seed drew the same scenario")
	}
}

// Every plan is one the server accepts and most riders can be matched:
// each rider asks before its station's driver crosses the radius, at a
// station of that driver's route, for the route's destination.
func TestScenarioPlansFitTogether(t *testing.T) {
	span := 10 * time.Minute
	sc := NewScenario(catalog(), 30, 50, span, 1)
	if len(sc.Drivers) != 30 || len(sc.Riders) != 50 {
		t.Fatalf("%d drivers, %d riders, want 30 and 50", len(sc.Drivers), len(sc.Riders))
	}
	dests := map[string]map[string]bool{} // station → destinations of routes through it
	for _, d := range sc.Drivers {
		if d.Seats < 1 || d.Seats > 8 || d.SpeedMps < 5 || d.SpeedMps > 15 {
			t.Errorf("driver %d: %d seats at %.1f m/s", d.Driver, d.Seats, d.SpeedMps)
		}
		if d.Start < 0 || d.Start > span/2 {
			t.Errorf("driver %d sets off at %s of %s", d.Driver, d.Start, span)
		}
		if got := geo.DistanceM(d.Origin, d.Stations[0].Point); got <= d.Stations[0].RadiusM {
			t.Errorf("driver %d starts %.0f m from its first station, inside the radius", d.Driver, got)
		}
		for _, s := range d.Stations {
			if s.ID == "no-areas" {
				t.Errorf("driver %d passes a station without areas", d.Driver)
			}
			if dests[s.ID] == nil {
				dests[s.ID] = map[string]bool{}
			}
			dests[s.ID][d.Destination.ID] = true
		}
	}
	for _, r := range sc.Riders {
		if r.Request < 0 || r.Request >= r.Arrival || r.Arrival > span {
			t.Errorf("rider %d asks at %s to arrive at %s (span %s)", r.Rider, r.Request, r.Arrival, span)
		}
		if r.Party < 1 || r.Party > 4 {
			t.Errorf("rider %d: party of %d", r.Rider, r.Party)
		}
		if !dests[r.Station][r.Destination] {
			t.Errorf("rider %d wants %s from %s, where no route goes", r.Rider, r.Destination, r.Station)
		}
	}
}

func TestAlong(t *testing.T) {
	a, b := geo.Point{Lat: 12.9, Lng: 77.6}, geo.Point{Lat: 12.91, Lng: 77.6}
	leg := geo.DistanceM(a, b)
	if p, end := along([]geo.Point{a, b}, leg/2); end || geo.DistanceM(p, a) < leg/2-1 || geo.DistanceM(p, a) > leg/2+1 {
		t.Errorf("half way = %v (end %v), want %.0f m from the start", p, end, leg/2)
	}
	if p, end := along([]geo.Point{a, b}, 2*leg); !end || p != b {
		t.Errorf("past the end = %v (end %v), want the last point", p, end)
	}
	if d := geo.DistanceM(a, offset(a, 90, 500)); d < 499 || d > 501 {
		t.Errorf("offset 500 m east is %.1f m away", d)
	}
}
