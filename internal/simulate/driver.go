package simulate

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"github.com/lastmile/lastmile/internal/geo"
)

// tripView is the part of a trip a driver acts on.
type tripView struct {
	ID        string `json:"id"`
	RouteID   string `json:"route_id"`
	StationID string `json:"station_id"`
	Status    string `json:"status"`
	Riders    []struct {
		RiderID string `json:"rider_id"`
		Status  string `json:"status"`
	} `json:"riders"`
}

// driverAgent is one simulated driver: it publishes a route, drives it
// with a fix every interval, stops where riders wait, picks them up (or
// marks them no-show), and drops them off at the destination.
type driverAgent struct {
	w     *world
	idx   int
	id    string
	token string
	sock  *socket
	rng   *rand.Rand

	pos    geo.Point
	lastAt time.Time
}

func newDriver(w *world, idx int, id, token string, seed uint64) *driverAgent {
	d := &driverAgent{w: w, idx: idx, id: id, token: token, rng: rand.New(rand.NewPCG(seed, uint64(idx)+1))}
	d.sock = newSocket(w.base, token, w.hc, w.stats, nil)
	return d
}

// leg is where the driver is in a round.
type leg int

const (
	moving leg = iota
	atStation
	atDestination
)

// round drives one plan from start to finish (or until ctx ends).
func (d *driverAgent) round(ctx context.Context, p DriverPlan) {
	w := d.w
	if !w.sleepUntil(ctx, w.wall(p.Start)) {
		return
	}
	routeID, ok := d.publish(ctx, p)
	if !ok {
		return
	}
	if w.demo {
		w.recruit(p)
	}
	path := p.Path()
	// stops[i] is the distance along the path of station i; the last is
	// the destination.
	stops := make([]float64, len(path)-1)
	var total float64
	for i := 0; i+1 < len(path); i++ {
		total += geo.DistanceM(path[i], path[i+1])
		stops[i] = total
	}
	speed := p.SpeedMps * w.speedup // metres per wall second
	crossed := make([]bool, len(p.Stations))
	var (
		dist     float64
		state    = moving
		stop     int // station index while atStation
		visit    *stationVisit
		lastTick = time.Now()
		lastPing = time.Now()
	)
	d.pos = p.Origin
	tk := time.NewTicker(w.interval)
	defer tk.Stop()
	for {
		// Work at a stop first: its calls may take a while on a busy
		// server, and the movement below must span exactly the time since
		// the last fix, or the server sees an implausible jump.
		switch state {
		case atStation:
			if d.atStation(ctx, routeID, p.Stations[stop], visit) {
				state, stop = moving, stop+1
				lastTick = time.Now()
			}
		case atDestination:
			d.finish(ctx, routeID)
			return
		}
		now := time.Now()
		dt := now.Sub(lastTick).Seconds()
		lastTick = now
		moveSpeed := 0.0
		if state == moving {
			dist += speed * dt
			moveSpeed = speed
			if stop < len(p.Stations) && dist >= stops[stop] {
				dist, state, visit = stops[stop], atStation, &stationVisit{}
			}
			if state == moving && dist >= total {
				dist, state = total, atDestination
			}
			d.pos, _ = along(path, dist)
		}
		heading := 0.0
		if k := legOf(stops, dist); k+1 < len(path) {
			heading = geo.BearingDeg(path[k], path[k+1])
		}
		fix := d.noisy(d.pos)
		for i, s := range p.Stations {
			if !crossed[i] && geo.DistanceM(fix, s.Point) <= s.RadiusM {
				crossed[i] = true
				w.crossed(routeID, s.ID, time.Now())
			}
		}
		d.send(fix, moveSpeed, heading)
		if time.Since(lastPing) >= time.Second {
			d.sock.ping()
			lastPing = time.Now()
		}
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
		}
	}
}

// legOf is the index of the path leg at dist.
func legOf(stops []float64, dist float64) int {
	for i, s := range stops {
		if dist < s {
			return i
		}
	}
	return len(stops) - 1
}

// noisy adds GPS noise: a few metres, normally distributed.
func (d *driverAgent) noisy(p geo.Point) geo.Point {
	return offset(p, d.rng.Float64()*360, math.Abs(d.rng.NormFloat64())*4)
}

// send writes one location message, its time strictly after the last.
func (d *driverAgent) send(p geo.Point, speed, heading float64) {
	at := time.Now().UTC()
	if !at.After(d.lastAt) {
		at = d.lastAt.Add(time.Millisecond)
	}
	d.lastAt = at
	b := make([]byte, 0, 160)
	b = append(b, `{"type":"location","lat":`...)
	b = strconv.AppendFloat(b, p.Lat, 'f', 6, 64)
	b = append(b, `,"lng":`...)
	b = strconv.AppendFloat(b, p.Lng, 'f', 6, 64)
	b = append(b, `,"at":"`...)
	b = at.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","speed_mps":`...)
	b = strconv.AppendFloat(b, speed, 'f', 1, 64)
	b = append(b, `,"heading":`...)
	b = strconv.AppendFloat(b, math.Mod(heading, 360), 'f', 0, 64)
	b = append(b, '}')
	d.sock.sendFix(b)
}

// publish creates the round's route. A route left active by an earlier
// round (an error cut it short) is cancelled first.
func (d *driverAgent) publish(ctx context.Context, p DriverPlan) (string, bool) {
	w := d.w
	ids := make([]string, len(p.Stations))
	for i, s := range p.Stations {
		ids[i] = s.ID
	}
	body := map[string]any{"station_ids": ids, "destination_area_id": p.Destination.ID, "seats": p.Seats,
		"vehicle": fmt.Sprintf("simulated car %d", d.idx)}
	var route struct {
		ID string `json:"id"`
	}
	for attempt := 0; attempt < 2; attempt++ {
		err := w.api.do(ctx, http.MethodPost, "/api/v1/routes", d.token, body, &route, callOpts{idempotent: true})
		if err == nil {
			w.stats.routes.Add(1)
			w.mu.Lock()
			w.routes[route.ID] = d.token
			w.mu.Unlock()
			return route.ID, true
		}
		if statusOf(err) != http.StatusConflict || ctx.Err() != nil {
			break
		}
		var cur struct {
			ID string `json:"id"`
		}
		if err := w.api.do(ctx, http.MethodGet, "/api/v1/routes/current", d.token, nil, &cur); err != nil {
			break
		}
		_ = w.api.do(ctx, http.MethodPost, "/api/v1/routes/"+cur.ID+"/cancel", d.token, nil, nil)
	}
	if ctx.Err() == nil {
		w.stats.errorf("route_failed")
	}
	return "", false
}

// stationVisit is the driver's progress at one station.
type stationVisit struct {
	tripID    string
	checked   bool
	arrivedAt time.Time
	lastLook  time.Time
}

// atStation plays one tick at a station: find the trip there, mark
// arrival, pick up whoever is present, mark no-shows once allowed, start.
// It reports whether the driver may drive on.
func (d *driverAgent) atStation(ctx context.Context, routeID string, st Station, v *stationVisit) bool {
	w := d.w
	if time.Since(v.lastLook) < max(w.interval, 500*time.Millisecond) {
		return false
	}
	v.lastLook = time.Now()
	if !v.checked {
		trips, err := d.trips(ctx, "scheduled")
		if err != nil {
			return false
		}
		v.checked = true
		for _, t := range trips {
			if t.RouteID == routeID && t.StationID == st.ID {
				v.tripID = t.ID
			}
		}
		if v.tripID == "" {
			return true // nobody to pick up here
		}
	}
	base := "/api/v1/trips/" + v.tripID
	if v.arrivedAt.IsZero() {
		err := w.api.do(ctx, http.MethodPost, base+"/arrived", d.token, nil, nil)
		switch {
		case err == nil:
			w.stats.arrivals.Add(1)
		case statusOf(err) == http.StatusConflict: // recorded by an earlier try
		default:
			w.failed(ctx, "arrived_failed_%d", statusOf(err))
			return false
		}
		v.arrivedAt = time.Now()
	}
	var t tripView
	if err := w.api.do(ctx, http.MethodGet, base, d.token, nil, &t); err != nil {
		w.failed(ctx, "trip_get_failed_%d", statusOf(err))
		return false
	}
	if t.Status != "scheduled" {
		return true // cancelled (everyone left) or started by an earlier try
	}
	waiting, onBoard := 0, 0
	for _, r := range t.Riders {
		switch r.Status {
		case "picked_up":
			onBoard++
		case "matched":
			switch {
			case w.present(r.RiderID):
				if err := w.api.do(ctx, http.MethodPost, base+"/riders/"+r.RiderID+"/picked-up", d.token, nil, nil); err == nil {
					w.stats.pickups.Add(1)
					onBoard++
					continue
				} else if statusOf(err) != http.StatusConflict {
					w.failed(ctx, "pickup_failed_%d", statusOf(err))
				}
				waiting++
			case time.Since(v.arrivedAt) >= w.noShowWait:
				err := w.api.do(ctx, http.MethodPost, base+"/riders/"+r.RiderID+"/no-show", d.token, nil, nil)
				if err == nil {
					w.stats.noShows.Add(1)
					w.freed(routeID, time.Now())
					continue
				}
				if statusOf(err) != http.StatusConflict { // 409: too early for the server; try again
					w.failed(ctx, "no_show_failed_%d", statusOf(err))
				}
				waiting++
			default:
				waiting++
			}
		}
	}
	if waiting > 0 {
		return false
	}
	if onBoard == 0 {
		return true
	}
	err := w.api.do(ctx, http.MethodPost, base+"/start", d.token, nil, nil)
	switch {
	case err == nil:
		w.stats.starts.Add(1)
		return true
	case statusOf(err) == http.StatusConflict:
		return false // look again
	default:
		w.failed(ctx, "start_failed_%d", statusOf(err))
		return false
	}
}

// trips lists the driver's own trips of a status.
func (d *driverAgent) trips(ctx context.Context, status string) ([]tripView, error) {
	var page struct {
		Trips []tripView `json:"trips"`
	}
	err := d.w.api.do(ctx, http.MethodGet, "/api/v1/trips?limit=100&status="+status, d.token, nil, &page)
	if err != nil && ctx.Err() == nil {
		d.w.stats.errorf("trips_list_failed_%d", statusOf(err))
	}
	return page.Trips, err
}

// finish drops everyone off at the destination and ends the route; a
// route that still holds seats (a rider matched after the driver passed)
// is cancelled, which hands those riders back to waiting.
func (d *driverAgent) finish(ctx context.Context, routeID string) {
	w := d.w
	trips, err := d.trips(ctx, "active")
	if err != nil {
		return
	}
	for _, t := range trips {
		if t.RouteID != routeID {
			continue
		}
		for _, r := range t.Riders {
			if r.Status != "picked_up" {
				continue
			}
			err := w.api.do(ctx, http.MethodPost, "/api/v1/trips/"+t.ID+"/riders/"+r.RiderID+"/dropped-off", d.token, nil, nil)
			switch {
			case err == nil:
				w.stats.dropOffs.Add(1)
			case statusOf(err) != http.StatusConflict && ctx.Err() == nil:
				w.stats.errorf("drop_off_failed_%d", statusOf(err))
			}
		}
	}
	err = w.api.do(ctx, http.MethodPost, "/api/v1/routes/"+routeID+"/complete", d.token, nil, nil)
	if err == nil {
		w.stats.routesCompleted.Add(1)
		return
	}
	if statusOf(err) == http.StatusConflict {
		if err := w.api.do(ctx, http.MethodPost, "/api/v1/routes/"+routeID+"/cancel", d.token, nil, nil); err == nil {
			w.stats.routesCancelled.Add(1)
			return
		}
	}
	if ctx.Err() == nil {
		w.stats.errorf("route_end_failed_%d", statusOf(err))
	}
}

// run plays the driver's rounds: the one planned, or in a demo one after
// another from wherever the last ended, until ctx ends.
func (d *driverAgent) run(ctx context.Context, first *DriverPlan) error {
	if first != nil {
		d.round(ctx, *first)
	}
	for d.w.demo && ctx.Err() == nil {
		p := d.w.nextRound(d.idx, d.pos, first == nil)
		first = &p
		d.round(ctx, p)
	}
	return nil
}
