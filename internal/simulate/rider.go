package simulate

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"time"
)

// rideRecord is one ride.matched the rider received.
type rideRecord struct {
	RequestID string
	TripID    string
	Seq       int64
	Receipts  int
}

// riderAgent is one simulated rider: it asks for its rides, turns up at
// the station (or does not), sometimes cancels, and listens to its events.
type riderAgent struct {
	w      *world
	idx    int
	id     string
	token  string
	sock   *socket
	plans  chan RiderPlan
	wakeup chan struct{}

	mu sync.Mutex
	// requests are the ride requests this rider made, by id.
	requests map[string]*ride
	// matched is every ride.matched received, by event number.
	matched map[int64]*rideRecord
	// inflight is the request being sent, until the server answers.
	inflight *ride
	// failed counts requests the server never took.
	failed int
	// busy is set while the rider plays a ride (demo recruiting).
	busy bool
}

// ride is one request and what became of it, as the rider knows it.
type ride struct {
	plan    RiderPlan
	id      string
	sentAt  time.Time
	status  string // waiting, matched, picked_up, dropped_off, cancelled, expired, no_show
	shownAt time.Time
	// endReason says why a ride that was never matched ended.
	endReason string
	// routeID is the route of the trip the ride was matched to.
	routeID string
}

func newRider(w *world, idx int, id, token string) *riderAgent {
	r := &riderAgent{w: w, idx: idx, id: id, token: token, plans: make(chan RiderPlan, 4), wakeup: make(chan struct{}, 1),
		requests: map[string]*ride{}, matched: map[int64]*rideRecord{}}
	r.sock = newSocket(w.base, token, w.hc, w.stats, r.onEvent)
	return r
}

// present reports whether the rider is at the station of its matched ride
// (and so can be picked up): it turned up and is not a no-show.
func (r *riderAgent) present() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rd := range r.requests {
		if rd.status == "matched" && !rd.shownAt.IsZero() && !rd.plan.NoShow {
			return true
		}
	}
	return false
}

// run takes plans until the channel closes or ctx ends.
func (r *riderAgent) run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case p, ok := <-r.plans:
			if !ok {
				return nil
			}
			r.ride(ctx, p)
			r.mu.Lock()
			r.busy = false
			r.mu.Unlock()
		}
	}
}

// ride asks for one ride and plays the rider's part in it.
func (r *riderAgent) ride(ctx context.Context, p RiderPlan) {
	w := r.w
	if !w.sleepUntil(ctx, w.wall(p.Request)) {
		return
	}
	arrival := w.wall(p.Arrival)
	body := map[string]any{
		"station_id": p.Station, "destination_area_id": p.Destination,
		"arrival_time": arrival.UTC().Format(time.RFC3339), "party_size": p.Party,
	}
	var out struct {
		ID string `json:"id"`
	}
	// A driver already approaching matches the request at once: its
	// ride.matched may come before the answer to the POST.
	rd := &ride{plan: p, sentAt: time.Now(), status: "waiting"}
	r.mu.Lock()
	r.inflight = rd
	r.mu.Unlock()
	err := w.api.do(ctx, http.MethodPost, "/api/v1/ride-requests", r.token, body, &out, callOpts{idempotent: true})
	r.mu.Lock()
	r.inflight = nil
	if err == nil {
		rd.id = out.ID
		r.requests[rd.id] = rd
	}
	r.mu.Unlock()
	if err != nil {
		if ctx.Err() == nil {
			w.stats.errorf("request_failed_%d", statusOf(err))
			r.mu.Lock()
			r.failed++
			r.mu.Unlock()
		}
		return
	}
	w.stats.requests.Add(1)

	// Turn up at the station at the arrival time; cancel at the planned
	// moment if not picked up by then.
	var cancelAt time.Time
	if p.CancelAfter > 0 {
		cancelAt = rd.sentAt.Add(w.real(p.CancelAfter))
	}
	shown := false
	for {
		now := time.Now()
		if !shown && !now.Before(arrival) {
			shown = true
			r.mu.Lock()
			rd.shownAt = arrival
			r.mu.Unlock()
		}
		if !cancelAt.IsZero() && !now.Before(cancelAt) {
			cancelAt = time.Time{}
			err := w.api.do(ctx, http.MethodPost, "/api/v1/ride-requests/"+rd.id+"/cancel", r.token, nil, nil)
			switch {
			case err == nil:
				w.stats.cancels.Add(1)
				r.mu.Lock()
				rd.endReason = "cancelled_by_rider"
				route := rd.routeID
				r.mu.Unlock()
				if route != "" {
					w.freed(route, time.Now())
				}
				r.setStatus(rd.id, "cancelled")
			case statusOf(err) == http.StatusConflict: // picked up already, or over
			case ctx.Err() == nil:
				w.stats.errorf("cancel_failed_%d", statusOf(err))
			}
		}
		r.mu.Lock()
		status := rd.status
		r.mu.Unlock()
		switch status {
		case "dropped_off", "cancelled", "expired", "no_show":
			return
		}
		if !w.demo && shown && cancelAt.IsZero() {
			return // nothing more to do; events keep coming on the socket
		}
		next := 5 * time.Second
		if !shown {
			next = min(next, time.Until(arrival))
		}
		if !cancelAt.IsZero() {
			next = min(next, time.Until(cancelAt))
		}
		t := time.NewTimer(max(next, 10*time.Millisecond))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-r.wakeup:
			t.Stop()
		case <-t.C:
			if w.demo && shown { // events may have been missed: ask
				var cur struct {
					Status string `json:"status"`
				}
				if err := w.api.do(ctx, http.MethodGet, "/api/v1/ride-requests/"+rd.id, r.token, nil, &cur); err == nil {
					r.setStatus(rd.id, cur.Status)
				}
			}
		}
	}
}

func (r *riderAgent) setStatus(requestID, status string) {
	r.mu.Lock()
	if rd, ok := r.requests[requestID]; ok && status != "" {
		rd.status = status
	}
	r.mu.Unlock()
	select {
	case r.wakeup <- struct{}{}:
	default:
	}
}

// onEvent takes the rider's events, on the socket's reading goroutine (or,
// with a zero received time, read over REST at the end).
func (r *riderAgent) onEvent(ev event, received time.Time) {
	switch ev.Kind {
	case "ride.matched":
		var d struct {
			RequestID string `json:"ride_request_id"`
			TripID    string `json:"trip_id"`
			StationID string `json:"station_id"`
			Trip      struct {
				RouteID string `json:"route_id"`
			} `json:"trip"`
		}
		if err := json.Unmarshal(ev.Data, &d); err != nil {
			r.w.stats.errorf("event_bad_ride_matched")
			return
		}
		r.mu.Lock()
		rec, seen := r.matched[ev.Seq]
		if !seen {
			rec = &rideRecord{RequestID: d.RequestID, TripID: d.TripID, Seq: ev.Seq}
			r.matched[ev.Seq] = rec
		}
		rec.Receipts++
		var sentAt time.Time
		rd, ok := r.requests[d.RequestID]
		if !ok && r.inflight != nil && r.inflight.id == "" {
			rd, ok = r.inflight, true
			rd.id = d.RequestID
		}
		if ok {
			sentAt = rd.sentAt
			rd.status, rd.routeID = "matched", d.Trip.RouteID
		}
		r.mu.Unlock()
		if seen {
			return
		}
		r.w.stats.matches.Add(1)
		if received.IsZero() {
			return // read over REST at the end, not delivered live
		}
		// The match was due from the later of: the driver's fix crossing
		// the radius, the request being sent (while the driver was already
		// approaching), and a seat of the route coming back.
		crossed, ok := r.w.crossing(d.Trip.RouteID, d.StationID)
		if !ok || sentAt.IsZero() {
			r.w.stats.errorf("match_latency_unknown")
			return
		}
		from := crossed
		if sentAt.After(from) {
			from = sentAt
		}
		if freed := r.w.seatFreed(d.Trip.RouteID); freed.After(from) && freed.Before(received) {
			from = freed
		}
		r.w.stats.matchLatency(max(0, received.Sub(from)))
	case "trip.updated":
		var d struct {
			Trip struct {
				Riders []struct {
					RiderID   string `json:"rider_id"`
					RequestID string `json:"ride_request_id"`
					Status    string `json:"status"`
				} `json:"riders"`
			} `json:"trip"`
		}
		if json.Unmarshal(ev.Data, &d) != nil {
			return
		}
		for _, x := range d.Trip.Riders {
			if x.RiderID == r.id && x.Status != "released" {
				r.setStatus(x.RequestID, x.Status)
			}
		}
	case "ride.cancelled", "ride.expired":
		var d struct {
			RequestID string `json:"ride_request_id"`
			Request   struct {
				ID string `json:"id"`
			} `json:"ride_request"`
		}
		_ = json.Unmarshal(ev.Data, &d)
		id := d.RequestID
		if id == "" {
			id = d.Request.ID
		}
		status := "cancelled"
		if ev.Kind == "ride.expired" {
			status = "expired"
		}
		r.setStatus(id, status)
	}
}
