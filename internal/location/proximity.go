package location

import (
	"math"
	"time"

	"github.com/lastmile/lastmile/internal/geo"
)

// Station is a station ahead on a driver's route.
type Station struct {
	ID      string
	Point   geo.Point
	RadiusM float64
}

// Geometry holds the distances that decide approach and passing.
type Geometry struct {
	// PassRadiusM: a driver this close to a station has reached it.
	PassRadiusM float64
	// LeaveRadiusM: a driver that reached a station and is now farther than
	// this has passed it.
	LeaveRadiusM float64
	// FloorSpeedMps is the speed assumed for the ETA when the driver is
	// stopped or slower (a stopped car still arrives).
	FloorSpeedMps float64
}

func (g *Geometry) defaults() {
	if g.PassRadiusM <= 0 {
		g.PassRadiusM = 100
	}
	if g.LeaveRadiusM <= g.PassRadiusM {
		g.LeaveRadiusM = 2 * g.PassRadiusM
	}
	if g.FloorSpeedMps <= 0 {
		g.FloorSpeedMps = 3
	}
}

// Proximity is what one fix means for a driver's route.
type Proximity struct {
	// Passed lists stations of ahead the driver has now passed, in order.
	Passed []string
	// Approaching is the first station still ahead whose trigger radius
	// the fix lies in, or nil.
	Approaching *Station
	DistanceM   float64
}

// metresPerDegree is the length of a degree of latitude on geo's sphere,
// rounded down by a part in a million, so that a latitude difference times
// it never exceeds the great-circle distance.
const metresPerDegree = geo.EarthRadiusM * math.Pi / 180 * (1 - 1e-6)

// Evaluate compares a position only with the stations still ahead on the
// driver's route (at most 20), so its cost does not grow with the number of
// stations, drivers or riders. reached holds the stations the driver has
// been within PassRadiusM of; Evaluate adds to it.
func (g Geometry) Evaluate(pos geo.Point, ahead []Station, reached map[string]bool) Proximity {
	var p Proximity
	for i := range ahead {
		st := &ahead[i]
		// The difference in latitude alone is a lower bound of the great
		// circle distance: a station farther north or south than every
		// radius that matters needs no exact distance (most stations of a
		// route, on most fixes).
		if far := math.Abs(pos.Lat-st.Point.Lat) * metresPerDegree; far > st.RadiusM && far > g.LeaveRadiusM {
			if reached[st.ID] {
				p.Passed = append(p.Passed, st.ID)
				delete(reached, st.ID)
			}
			continue
		}
		d := geo.DistanceM(pos, st.Point)
		if d <= g.PassRadiusM {
			reached[st.ID] = true
		} else if reached[st.ID] && d > g.LeaveRadiusM {
			p.Passed = append(p.Passed, st.ID)
			delete(reached, st.ID)
			continue
		}
		if p.Approaching == nil && d <= st.RadiusM {
			p.Approaching, p.DistanceM = st, d
		}
	}
	return p
}

// ETA estimates when a driver at distanceM from a station, moving at
// speedMps, arrives there; below the floor speed the floor is used.
func (g Geometry) ETA(at time.Time, distanceM, speedMps float64) time.Time {
	v := math.Max(speedMps, g.FloorSpeedMps)
	if math.IsNaN(v) || math.IsInf(v, 0) {
		v = g.FloorSpeedMps
	}
	return at.Add(time.Duration(distanceM / v * float64(time.Second)))
}
