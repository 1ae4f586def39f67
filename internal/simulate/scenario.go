package simulate

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/lastmile/lastmile/internal/geo"
)

// Station is a catalog station as the simulation uses it.
type Station struct {
	ID      string
	Point   geo.Point
	RadiusM float64
	Areas   []Area
}

// Area is a destination near a station.
type Area struct {
	ID    string
	Point geo.Point
}

// DriverPlan is one round of one driver: where it sets off, the stations
// it passes, where it heads and how fast. Times are simulated offsets from
// the start of the run.
type DriverPlan struct {
	Driver      int
	Start       time.Duration
	Origin      geo.Point
	Stations    []Station
	Destination Area
	SpeedMps    float64
	Seats       int
}

// Path is the polyline the driver follows: origin, each station, the
// destination.
func (p DriverPlan) Path() []geo.Point {
	path := []geo.Point{p.Origin}
	for _, s := range p.Stations {
		path = append(path, s.Point)
	}
	return append(path, p.Destination.Point)
}

// arrivalAt is the simulated offset at which the driver reaches station i
// of its route, driving without stops.
func (p DriverPlan) arrivalAt(i int) time.Duration {
	path := p.Path()
	var d float64
	for k := 0; k <= i; k++ {
		d += geo.DistanceM(path[k], path[k+1])
	}
	return p.Start + seconds(d/p.SpeedMps)
}

// enterAt is when the driver crosses the trigger radius of station i.
func (p DriverPlan) enterAt(i int) time.Duration {
	return p.arrivalAt(i) - seconds(p.Stations[i].RadiusM/p.SpeedMps)
}

// RiderPlan is one ride a rider asks for: when it asks, when it reaches
// the station, and whether it cancels or never shows up. Times are
// simulated offsets from the start of the run.
type RiderPlan struct {
	Rider       int
	Request     time.Duration
	Arrival     time.Duration
	Station     string
	Destination string
	Party       int
	// CancelAfter, when positive, is how long after asking the rider
	// cancels if not picked up by then.
	CancelAfter time.Duration
	NoShow      bool
}

// Scenario is everything a run will do, drawn from one seed.
type Scenario struct {
	Drivers []DriverPlan
	Riders  []RiderPlan
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// generator draws plans. The same seed and catalog give the same plans.
type generator struct {
	rng       *rand.Rand
	stations  []Station
	neighbors map[string][]Station // stations within 4 km, for two-station routes
	span      time.Duration
}

func newGenerator(stations []Station, span time.Duration, seed uint64) *generator {
	var usable []Station
	for _, s := range stations {
		if len(s.Areas) > 0 && s.RadiusM > 0 {
			usable = append(usable, s)
		}
	}
	slices.SortFunc(usable, func(a, b Station) int { return strings.Compare(a.ID, b.ID) })
	g := &generator{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), stations: usable, neighbors: map[string][]Station{}, span: span}
	for _, a := range usable {
		for _, b := range usable {
			if d := geo.DistanceM(a.Point, b.Point); a.ID != b.ID && d > a.RadiusM+b.RadiusM && d < 4000 {
				g.neighbors[a.ID] = append(g.neighbors[a.ID], b)
			}
		}
	}
	return g
}

func (g *generator) between(lo, hi float64) float64 { return lo + g.rng.Float64()*(hi-lo) }

// driver draws one round of driver i setting off at start: one station
// (or, a third of the time, a neighbouring pair) and an area of the last
// one, approached from 100 m to 2.5 km outside the first trigger radius.
func (g *generator) driver(i int, start time.Duration) DriverPlan {
	first := g.stations[g.rng.IntN(len(g.stations))]
	route := []Station{first}
	if nb := g.neighbors[first.ID]; len(nb) > 0 && g.rng.IntN(3) == 0 {
		route = append(route, nb[g.rng.IntN(len(nb))])
	}
	last := route[len(route)-1]
	p := DriverPlan{
		Driver: i, Start: start, Stations: route,
		Destination: last.Areas[g.rng.IntN(len(last.Areas))],
		SpeedMps:    g.between(7, 12),
		Seats:       []int{1, 2, 3, 3, 4, 4}[g.rng.IntN(6)],
	}
	// Far enough out to cross the radius while the run lasts.
	out := math.Max(100, math.Min(2500, p.SpeedMps*g.span.Seconds()*g.between(0.05, 0.2)))
	bearing := g.between(0, 360)
	if len(route) > 1 { // come from the far side of the first station
		bearing = geo.BearingDeg(route[1].Point, first.Point) + g.between(-40, 40)
	}
	p.Origin = offset(first.Point, bearing, first.RadiusM+out)
	return p
}

// rider draws a ride for rider i that driver plan d can take at its
// station k: the rider asks before the driver crosses the radius and
// reaches the station around when the driver does, so most can be matched.
func (g *generator) rider(i int, d DriverPlan, k int) RiderPlan {
	st := d.Stations[k]
	arrive := d.arrivalAt(k)
	spread := g.span.Seconds()
	arrival := arrive + seconds(g.between(-math.Min(240, 0.1*spread), math.Min(120, 0.05*spread)))
	request := min(d.enterAt(k)-seconds(g.between(1, math.Min(120, 0.2*spread))), arrival-seconds(math.Min(30, 0.05*spread)))
	request = max(0, min(request, g.span*7/10)) // asked while the run lasts
	arrival = max(arrival, request+seconds(math.Min(30, 0.05*spread)))
	r := RiderPlan{Rider: i, Request: request, Arrival: arrival, Station: st.ID, Destination: d.Destination.ID, Party: 1}
	switch x := g.rng.IntN(100); {
	case x < 10:
		r.Party = 2
	case x < 13:
		r.Party = 3
	}
	switch x := g.rng.IntN(100); {
	case x < 8:
		r.CancelAfter = seconds(g.between(0.2, 1.2) * (arrival - request).Seconds())
	case x < 13:
		r.NoShow = true
	}
	return r
}

// NewScenario draws a run of span simulated time: drivers set off over the
// first 40% of it, and each rider is given a seat of some driver's route
// (riders beyond the seats on offer share seats with others, and some of
// them stay unmatched).
func NewScenario(stations []Station, drivers, riders int, span time.Duration, seed uint64) Scenario {
	g := newGenerator(stations, span, seed)
	var sc Scenario
	if len(g.stations) == 0 {
		return sc
	}
	type slot struct{ driver, station int }
	var slots []slot
	for i := range drivers {
		d := g.driver(i, seconds(g.between(0, 0.4*span.Seconds())))
		sc.Drivers = append(sc.Drivers, d)
		for range d.Seats {
			k := g.rng.IntN(len(d.Stations))
			if d.enterAt(k) > span*8/10 { // too late in the run: take the first station
				k = 0
			}
			slots = append(slots, slot{i, k})
		}
	}
	g.rng.Shuffle(len(slots), func(a, b int) { slots[a], slots[b] = slots[b], slots[a] })
	for i := range riders {
		s := slots[i%len(slots)]
		sc.Riders = append(sc.Riders, g.rider(i, sc.Drivers[s.driver], s.station))
	}
	return sc
}

// offset is the point distM from p along bearing (degrees from north), on
// a locally flat Earth (good to a few metres over a few kilometres).
func offset(p geo.Point, bearingDeg, distM float64) geo.Point {
	b := bearingDeg * math.Pi / 180
	return geo.Point{
		Lat: p.Lat + distM*math.Cos(b)/111195,
		Lng: p.Lng + distM*math.Sin(b)/(111195*math.Cos(p.Lat*math.Pi/180)),
	}
}

// along is the point dist metres along path, and whether the path ends
// before that.
func along(path []geo.Point, dist float64) (geo.Point, bool) {
	for i := 0; i+1 < len(path); i++ {
		leg := geo.DistanceM(path[i], path[i+1])
		if dist <= leg {
			f := dist / leg
			return geo.Point{Lat: path[i].Lat + f*(path[i+1].Lat-path[i].Lat), Lng: path[i].Lng + f*(path[i+1].Lng-path[i].Lng)}, false
		}
		dist -= leg
	}
	return path[len(path)-1], true
}

// driverFrom draws a demo driver's next round from where it stands: one of
// the three stations nearest to it, so the drive there stays short.
func (g *generator) driverFrom(i int, start time.Duration, from geo.Point) DriverPlan {
	near := slices.Clone(g.stations)
	slices.SortFunc(near, func(a, b Station) int {
		da, db := geo.DistanceM(from, a.Point), geo.DistanceM(from, b.Point)
		switch {
		case da < db:
			return -1
		case da > db:
			return 1
		}
		return 0
	})
	first := near[g.rng.IntN(min(3, len(near)))]
	p := g.driver(i, start)
	p.Stations = []Station{first}
	p.Destination = first.Areas[g.rng.IntN(len(first.Areas))]
	p.Origin = from
	return p
}
