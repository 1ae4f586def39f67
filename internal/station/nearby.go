package station

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"

	"github.com/lastmile/lastmile/internal/fault"
	"github.com/lastmile/lastmile/internal/geo"
	"github.com/lastmile/lastmile/internal/station/internal/stationdb"
)

// NearbyStation is a station and its great-circle distance from the point
// asked about.
type NearbyStation struct {
	Station
	DistanceM float64 `json:"distance_m"`
}

// Nearby returns the limit stations (1 to MaxPage) nearest to p by
// great-circle distance, nearest first (equal distances in id order). It
// returns a *fault.Validation naming lat or lng when p is not a coordinate.
//
// Nearby asks Postgres on every call rather than keeping a copy in memory,
// so that every replica answers from the same, current catalog. Its cost
// does not grow with the catalog: two GiST index lookups.
//  1. The limit stations nearest in plain degrees (point <-> point, an
//     index-ordered scan). Degrees are not metres, so these need not be the
//     nearest stations, but there are limit of them within reach, the
//     farthest of their great-circle distances.
//  2. Every station inside the lng/lat box around the spherical cap of
//     radius reach (two boxes when it crosses the antimeridian). The
//     nearest limit stations all lie within reach, so they are all in the
//     box; sorting its few stations by exact distance finds them.
func (s *Service) Nearby(ctx context.Context, p geo.Point, limit int) ([]NearbyStation, error) {
	var v fault.Validation
	v.Check(geo.ValidLat(p.Lat), "lat", "must be a number between -90 and 90")
	v.Check(geo.ValidLng(p.Lng), "lng", "must be a number between -180 and 180")
	if err := v.Err(); err != nil {
		return nil, err
	}
	limit = min(max(limit, 1), MaxPage)
	first, err := s.q.NearestByDegrees(ctx, stationdb.NearestByDegreesParams{Lat: p.Lat, Lng: p.Lng, K: int32(limit)})
	if err != nil {
		return nil, fmt.Errorf("find stations near %v: %w", p, err)
	}
	if len(first) == 0 {
		return []NearbyStation{}, nil
	}
	reach := 0.0
	for _, r := range first {
		reach = max(reach, geo.DistanceM(p, geo.Point{Lat: r.Lat, Lng: r.Lng}))
	}
	// A metre more, so rounding cannot leave a station on the edge out.
	b := boxAround(p, reach+1)
	rows, err := s.q.StationsInBoxes(ctx, stationdb.StationsInBoxesParams{
		MinLat: b.minLat, MaxLat: b.maxLat, MinLng1: b.minLng1, MaxLng1: b.maxLng1, MinLng2: b.minLng2, MaxLng2: b.maxLng2,
	})
	if err != nil {
		return nil, fmt.Errorf("find stations near %v: %w", p, err)
	}
	dist := make(map[string]float64, len(rows))
	for _, r := range rows {
		dist[r.ID] = geo.DistanceM(p, geo.Point{Lat: r.Lat, Lng: r.Lng})
	}
	slices.SortFunc(rows, func(a, b stationdb.Station) int {
		return cmp.Or(cmp.Compare(dist[a.ID], dist[b.ID]), cmp.Compare(a.ID, b.ID))
	})
	rows = rows[:min(limit, len(rows))]
	list, err := withAreas(ctx, s.q, rows)
	if err != nil {
		return nil, err
	}
	out := make([]NearbyStation, len(list))
	for i, st := range list {
		out[i] = NearbyStation{Station: st, DistanceM: math.Round(dist[st.ID]*10) / 10}
	}
	return out, nil
}

// box is a latitude band and one or two longitude ranges (the second equal
// to the first unless the area crosses the antimeridian), in degrees.
type box struct {
	minLat, maxLat   float64
	minLng1, maxLng1 float64
	minLng2, maxLng2 float64
}

// boxAround returns a box holding every point within radiusM of p
// (great-circle distance), after J. Matuschek, "Finding Points Within a
// Distance of a Latitude/Longitude Using Bounding Coordinates".
func boxAround(p geo.Point, radiusM float64) box {
	world := box{minLat: -90, maxLat: 90, minLng1: -180, maxLng1: 180, minLng2: -180, maxLng2: 180}
	δ := radiusM / geo.EarthRadiusM // angular radius, radians
	if δ >= math.Pi {
		return world
	}
	δDeg := δ * 180 / math.Pi
	b := box{minLat: p.Lat - δDeg, maxLat: p.Lat + δDeg}
	if b.minLat <= -90 || b.maxLat >= 90 {
		// The cap holds a pole: every longitude is in it.
		world.minLat, world.maxLat = max(b.minLat, -90), min(b.maxLat, 90)
		return world
	}
	// Away from the poles sin δ < cos φ, so the asin is defined.
	Δλ := math.Asin(math.Sin(δ)/math.Cos(p.Lat*math.Pi/180)) * 180 / math.Pi
	lo, hi := p.Lng-Δλ, p.Lng+Δλ
	switch {
	case lo < -180:
		b.minLng1, b.maxLng1, b.minLng2, b.maxLng2 = lo+360, 180, -180, hi
	case hi > 180:
		b.minLng1, b.maxLng1, b.minLng2, b.maxLng2 = lo, 180, -180, hi-360
	default:
		b.minLng1, b.maxLng1, b.minLng2, b.maxLng2 = lo, hi, lo, hi
	}
	return b
}
