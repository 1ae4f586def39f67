package station

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/lastmile/lastmile/internal/geo"
)

// destination is the point radiusM from p on the initial bearing bearingDeg
// (the spherical direct problem), to probe boxAround from outside.
func destination(p geo.Point, bearingDeg, radiusM float64) geo.Point {
	φ1, λ1 := p.Lat*math.Pi/180, p.Lng*math.Pi/180
	θ, δ := bearingDeg*math.Pi/180, radiusM/geo.EarthRadiusM
	φ2 := math.Asin(math.Sin(φ1)*math.Cos(δ) + math.Cos(φ1)*math.Sin(δ)*math.Cos(θ))
	λ2 := λ1 + math.Atan2(math.Sin(θ)*math.Sin(δ)*math.Cos(φ1), math.Cos(δ)-math.Sin(φ1)*math.Sin(φ2))
	lng := math.Mod(λ2*180/math.Pi+540, 360) - 180
	return geo.Point{Lat: φ2 * 180 / math.Pi, Lng: lng}
}

func (b box) contains(q geo.Point) bool {
	if q.Lat < b.minLat || q.Lat > b.maxLat {
		return false
	}
	return (q.Lng >= b.minLng1 && q.Lng <= b.maxLng1) || (q.Lng >= b.minLng2 && q.Lng <= b.maxLng2)
}

func TestBoxAroundHoldsTheWholeCircle(t *testing.T) {
	tests := []struct {
		name    string
		center  geo.Point
		radiusM float64
	}{
		{"bengaluru, 5 km", geo.Point{Lat: 12.9177, Lng: 77.6238}, 5000},
		{"far north, 50 km", geo.Point{Lat: 64, Lng: 25}, 50_000},
		{"far south, 300 km", geo.Point{Lat: -70, Lng: -60}, 300_000},
		{"across the antimeridian eastwards", geo.Point{Lat: -17.7, Lng: 179.9}, 40_000},
		{"across the antimeridian westwards", geo.Point{Lat: 51, Lng: -179.95}, 20_000},
		{"over the north pole", geo.Point{Lat: 89.9, Lng: 10}, 30_000},
		{"half the world", geo.Point{Lat: 10, Lng: 10}, 10_000_000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := boxAround(tt.center, tt.radiusM)
			for bearing := 0.0; bearing < 360; bearing += 7.5 {
				for _, frac := range []float64{0.25, 0.999} {
					q := destination(tt.center, bearing, frac*tt.radiusM)
					if !b.contains(q) {
						t.Errorf("box %+v leaves out %v, %.0f m away at bearing %.1f", b, q, frac*tt.radiusM, bearing)
					}
				}
			}
		})
	}
	t.Run("leaves out what is far away", func(t *testing.T) {
		c := geo.Point{Lat: 12.9177, Lng: 77.6238}
		b := boxAround(c, 5000)
		for _, bearing := range []float64{0, 90, 180, 270} {
			if q := destination(c, bearing, 7500); b.contains(q) {
				t.Errorf("box %+v holds %v, 7.5 km away", b, q)
			}
		}
	})
}

// metresPerDegree is the length of one degree of a great circle:
// EarthRadiusM × π / 180.
const metresPerDegree = 111195.08023353292

func TestNearbyOrdersByGreatCircleDistance(t *testing.T) {
	svc := newService(t)
	ctx := context.Background()
	add := func(id string, lat, lng float64) {
		mustCreate(t, svc, StationInput{ID: id, Name: id, Lat: ptr(lat), Lng: ptr(lng)})
	}
	// Around (0, 0) every distance is a whole arc of a great circle.
	add("south", -0.05, 0) // 0.05° of a meridian
	add("east", 0, 0.01)   // 0.01° of the equator
	add("far", 0, 1)
	add("west", 0, -0.03)
	add("north", 0.02, 0)
	// At 60°N a degree of longitude is half a degree of latitude: "lng-side"
	// is farther in degrees (0.9 against 0.6) but nearer on the ground.
	add("lng-side", 60, 0.9)
	add("lat-side", 60.6, 0)
	// Either side of the antimeridian.
	add("date-east", 0, -179.999)
	add("date-west", 0, 179.99)
	// Either side of the north pole.
	add("pole-far-side", 89.99, 180)
	add("pole-near-side", 89.95, 0)

	type hit struct {
		id string
		m  float64
	}
	tests := []struct {
		name  string
		at    geo.Point
		limit int
		want  []hit
	}{
		{"nearest first", geo.Point{}, 5, []hit{
			{"east", 0.01 * metresPerDegree},  // 1111.95
			{"north", 0.02 * metresPerDegree}, // 2223.90
			{"west", 0.03 * metresPerDegree},  // 3335.85
			{"south", 0.05 * metresPerDegree}, // 5559.75
			{"far", 1 * metresPerDegree},      // 111195.08
		}},
		{"limit cuts the list", geo.Point{}, 2, []hit{{"east", 0.01 * metresPerDegree}, {"north", 0.02 * metresPerDegree}}},
		{"metres, not degrees", geo.Point{Lat: 60}, 1, []hit{
			// 2R·asin(cos 60° · sin 0.45°); "lat-side" is 0.6° of a meridian, 66717.0 m.
			{"lng-side", 50037.4},
		}},
		{"across the antimeridian", geo.Point{Lng: 179.999}, 2, []hit{
			{"date-east", 0.002 * metresPerDegree}, // 222.39
			{"date-west", 0.009 * metresPerDegree}, // 1000.76
		}},
		{"across the pole", geo.Point{Lat: 89.99}, 2, []hit{
			{"pole-far-side", 0.02 * metresPerDegree},  // over the pole: 2223.90
			{"pole-near-side", 0.04 * metresPerDegree}, // 4447.80
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := svc.Nearby(ctx, tt.at, tt.limit)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("Nearby gave %d stations, want %d: %v", len(got), len(tt.want), got)
			}
			for i, w := range tt.want {
				// Distances are rounded to 0.1 m.
				if got[i].ID != w.id || math.Abs(got[i].DistanceM-w.m) > 0.06 {
					t.Errorf("stations[%d] = %s at %.1f m, want %s at %.1f m", i, got[i].ID, got[i].DistanceM, w.id, w.m)
				}
			}
		})
	}
	t.Run("more than the catalog holds", func(t *testing.T) {
		got, err := svc.Nearby(ctx, geo.Point{}, 100)
		if err != nil || len(got) != 11 {
			t.Fatalf("Nearby(limit 100) = %d stations, %v; want all 11", len(got), err)
		}
		if !slices.IsSortedFunc(got, func(a, b NearbyStation) int { return cmp.Compare(a.DistanceM, b.DistanceM) }) {
			t.Errorf("not nearest first: %v", got)
		}
	})
	t.Run("bad coordinates name the field", func(t *testing.T) {
		_, err := svc.Nearby(ctx, geo.Point{Lat: 91, Lng: math.NaN()}, 5)
		if got := invalidFields(err); !slices.Equal(got, []string{"lat", "lng"}) {
			t.Fatalf("Nearby(91, NaN) names %v, want [lat lng]", got)
		}
	})
}

func TestNearbyOfAnEmptyCatalog(t *testing.T) {
	got, err := newService(t).Nearby(context.Background(), geo.Point{Lat: 12.9, Lng: 77.6}, 5)
	if err != nil || got == nil || len(got) != 0 {
		t.Fatalf("Nearby = %v, %v; want an empty list", got, err)
	}
}

// BenchmarkNearby searches a catalog of 10,000 stations spread over
// Bengaluru; its time should not depend on the catalog's size.
func BenchmarkNearby(b *testing.B) {
	svc := newService(b)
	ctx := context.Background()
	for i := range 10_000 {
		lat, lng := 12.7+float64(i/100)*0.006, 77.4+float64(i%100)*0.006
		mustCreate(b, svc, StationInput{ID: fmt.Sprintf("s%d", i), Name: "s", Lat: &lat, Lng: &lng})
	}
	if _, err := svc.pool.Exec(ctx, "ANALYZE stations"); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := svc.Nearby(ctx, geo.Point{Lat: 12.95, Lng: 77.62}, 20); err != nil {
			b.Fatal(err)
		}
	}
}
