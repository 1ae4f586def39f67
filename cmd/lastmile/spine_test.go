package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/lastmile/lastmile/internal/notify/notifytest"
	"github.com/lastmile/lastmile/internal/postgres/pgtest"
)

// The HSR Layout station of the default catalog and two of its areas.
const (
	hsrStation = "hsr"
	hsrLat     = 12.9121
	hsrLng     = 77.6387
	areaA      = "kudlu-gate"
	areaB      = "agara"
)

type rideRequest struct {
	ID        string  `json:"id"`
	RiderID   string  `json:"rider_id"`
	Status    string  `json:"status"`
	TripID    *string `json:"trip_id"`
	PartySize int     `json:"party_size"`
}

type tripView struct {
	ID       string `json:"id"`
	DriverID string `json:"driver_id"`
	Status   string `json:"status"`
	Riders   []struct {
		RiderID   string `json:"rider_id"`
		RequestID string `json:"ride_request_id"`
		PartySize int    `json:"party_size"`
		Status    string `json:"status"`
	} `json:"riders"`
	Events []struct {
		Kind string `json:"kind"`
	} `json:"events"`
}

// walker sends a driver's fixes walking north to the station in 300 m
// steps 8 s apart (135 km/h: plausible), timed so the last steps are fresh.
type walker struct {
	ws    *notifytest.Socket
	step  int
	start time.Time
	steps int
}

func newWalker(ws *notifytest.Socket, fromM float64) *walker {
	steps := int(fromM / 300)
	return &walker{ws: ws, steps: steps, start: time.Now().Add(-time.Duration(steps*8-5) * time.Second)}
}

// next sends the next fix; it returns false once at the station.
func (w *walker) next() bool {
	if w.step > w.steps {
		return false
	}
	remaining := float64(w.steps-w.step) * 300
	lat := hsrLat - remaining/111195
	at := w.start.Add(time.Duration(w.step*8) * time.Second)
	if time.Since(at) > 55*time.Second { // the server refuses fixes older than --offline-after
		w.step++
		return true
	}
	w.ws.Send(map[string]any{"type": "location", "lat": lat, "lng": hsrLng, "at": at.UTC().Format(time.RFC3339Nano), "speed_mps": 37.5})
	w.step++
	return true
}

// TestSpineGPSToMatch is the whole path through real sockets and a real
// database: a driver's fixes walk in from 3 km away, the three oldest
// riders waiting at the station for the driver's destination are matched
// and told at once, the driver is told, the fourth and a rider for another
// area keep waiting; when a matched rider cancels, the fourth takes the
// seat on the next fix. Then the trip runs to completion.
func TestSpineGPSToMatch(t *testing.T) {
	s := startServer(t, pgtest.URL(t), map[string]string{
		"LASTMILE_APPROACH_EVERY": "100ms",
		"LASTMILE_NO_SHOW_WAIT":   "1s",
	})
	driver := signUp(t, s, "driver", "Ravi")
	driverWS := driver.connect("")
	route := driver.must(201, "POST", "/api/v1/routes", map[string]any{
		"station_ids": []string{"silkboard", hsrStation, "bellandur"}, "destination_area_id": areaA, "seats": 3, "vehicle": "white Swift KA-01-AB-1234"})
	routeID := route["id"].(string)

	type waiting struct {
		c   *client
		ws  *notifytest.Socket
		req rideRequest
	}
	now := time.Now()
	var riders []waiting
	for i := range 4 { // arrival times one minute apart: 1 is the oldest
		c := signUp(t, s, "rider", fmt.Sprintf("Rider%d", i+1))
		ws := c.connect("")
		var req rideRequest
		body := map[string]any{"station_id": hsrStation, "destination_area_id": areaA, "arrival_time": now.Add(time.Duration(i+1) * time.Minute).UTC().Format(time.RFC3339)}
		if code := c.do("POST", "/api/v1/ride-requests", body, &req); code != 201 || req.Status != "waiting" {
			t.Fatalf("ride request %d = %d %+v", i+1, code, req)
		}
		riders = append(riders, waiting{c, ws, req})
	}
	other := signUp(t, s, "rider", "Elsewhere")
	otherWS := other.connect("")
	other.must(201, "POST", "/api/v1/ride-requests", map[string]any{"station_id": hsrStation, "destination_area_id": areaB,
		"arrival_time": now.Add(30 * time.Second).UTC().Format(time.RFC3339)})

	// An implausible fix is refused with its reason, and the socket stays open.
	driverWS.Send(map[string]any{"type": "location", "lat": 95.0, "lng": hsrLng})
	if e := driverWS.NextOf("error", "", 5*time.Second); e.Code != "invalid_lat" {
		t.Fatalf("error for lat 95 = %+v, want code invalid_lat", e)
	}
	otherWS.Send(map[string]any{"type": "location", "lat": hsrLat, "lng": hsrLng})
	if e := otherWS.NextOf("error", "", 5*time.Second); e.Code != "forbidden" {
		t.Fatalf("a rider's location message got %+v, want a forbidden error", e)
	}

	// Walk in from 3 km; nothing may be matched until the driver is inside 800 m.
	w := newWalker(driverWS, 3000)
	for w.step < w.steps-3 { // still more than 800 m away
		w.next()
	}
	riders[0].ws.None("ride.matched", 300*time.Millisecond)
	for w.next() {
		time.Sleep(50 * time.Millisecond)
	}

	var tripID string
	for i := range 3 {
		e := riders[i].ws.NextOf("event", "ride.matched", 5*time.Second)
		m := notifytest.Decode[struct {
			TripID  string         `json:"trip_id"`
			ReqID   string         `json:"ride_request_id"`
			Station string         `json:"station_id"`
			Vehicle string         `json:"vehicle"`
			Driver  map[string]any `json:"driver"`
			ETA     time.Time      `json:"eta"`
		}](t, e)
		if m.ReqID != riders[i].req.ID || m.Station != hsrStation || m.Driver["name"] != "Ravi" || m.Vehicle == "" || m.ETA.IsZero() {
			t.Fatalf("rider %d ride.matched = %s", i+1, e.Data)
		}
		if tripID == "" {
			tripID = m.TripID
		} else if m.TripID != tripID {
			t.Fatalf("rider %d matched to trip %s, others to %s: one trip per driver and station", i+1, m.TripID, tripID)
		}
	}
	assigned := driverWS.NextOf("event", "trip.assigned", 5*time.Second)
	if got := notifytest.Decode[map[string]any](t, assigned); got["trip_id"] != tripID {
		t.Fatalf("trip.assigned = %s, want trip %s", assigned.Data, tripID)
	}
	riders[3].ws.None("ride.matched", 300*time.Millisecond)
	otherWS.None("ride.matched", 10*time.Millisecond)

	var r4 rideRequest
	riders[3].c.do("GET", "/api/v1/ride-requests/"+riders[3].req.ID, nil, &r4)
	if r4.Status != "waiting" {
		t.Fatalf("the fourth rider is %s, want waiting", r4.Status)
	}
	var rt map[string]any
	driver.do("GET", "/api/v1/routes/current", nil, &rt)
	if rt["seats_free"] != float64(0) {
		t.Fatalf("seats_free = %v after three matches, want 0", rt["seats_free"])
	}

	// Rider 2 cancels: the seat comes back, and on the next fix rider 4 takes it.
	riders[1].c.must(200, "POST", "/api/v1/ride-requests/"+riders[1].req.ID+"/cancel", nil)
	riders[1].ws.NextOf("event", "ride.cancelled", 5*time.Second)
	// The next fix past the approach throttle re-offers the approach: send
	// fixes until one is (within a second of driver time, before the next
	// step below).
	var e notifytest.Message
	matched := false
	for i := 0; i < 9 && !matched; i++ {
		driverWS.Send(map[string]any{"type": "location", "lat": hsrLat - 0.0005, "lng": hsrLng, "speed_mps": 2,
			"at": w.start.Add(time.Duration(w.steps*8+8) * time.Second).Add(time.Duration(i) * 100 * time.Millisecond).UTC().Format(time.RFC3339Nano)})
		e, matched = riders[3].ws.Poll("ride.matched", 100*time.Millisecond)
	}
	if !matched {
		e = riders[3].ws.NextOf("event", "ride.matched", 5*time.Second)
	}
	if m := notifytest.Decode[map[string]any](t, e); m["trip_id"] != tripID {
		t.Fatalf("the fourth rider joined trip %v, want %s", m["trip_id"], tripID)
	}

	// Matched riders watch the driver approach: driver.location, at most once a second.
	var loc notifytest.Message
	got := false
	for i := 0; i < 40 && !got; i++ {
		driverWS.Send(map[string]any{"type": "location", "lat": hsrLat - 0.0004, "lng": hsrLng + float64(i)*0.00001, "speed_mps": 1,
			"at": w.start.Add(time.Duration(w.steps*8+9) * time.Second).Add(time.Duration(i) * 100 * time.Millisecond).UTC().Format(time.RFC3339Nano)})
		loc, got = riders[0].ws.Poll("driver.location", 200*time.Millisecond)
	}
	if !got {
		t.Fatalf("a matched rider never received driver.location")
	}
	if l := notifytest.Decode[map[string]any](t, loc); l["driver_id"] != driver.id || l["lat"] == nil || l["lng"] == nil {
		t.Fatalf("driver.location = %s", loc.Data)
	}
	otherWS.None("driver.location", 100*time.Millisecond) // not the unmatched rider's business

	// The trip, from the driver's side.
	path := "/api/v1/trips/" + tripID
	driver.must(409, "POST", path+"/start", nil) // not arrived
	driver.must(409, "POST", path+"/riders/"+riders[0].c.id+"/picked-up", nil)
	arrived := driver.must(200, "POST", path+"/arrived", nil)
	// The trip says from when a no-show may be marked (the app enables the
	// button then): arrival plus the server's --no-show-wait.
	arrivedAt, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(arrived["arrived_at"]))
	noShowAt, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(arrived["no_show_at"]))
	if arrivedAt.IsZero() || !noShowAt.Equal(arrivedAt.Add(time.Second)) {
		t.Errorf("after arrival: arrived_at %v, no_show_at %v; want no_show_at one second (the no-show wait) later", arrived["arrived_at"], arrived["no_show_at"])
	}
	driver.must(409, "POST", path+"/arrived", nil)
	riders[0].ws.NextOf("event", "trip.updated", 5*time.Second)
	riders[0].ws.NextOf("event", "driver.arrived", 5*time.Second)
	driver.must(200, "POST", path+"/riders/"+riders[0].c.id+"/picked-up", nil)
	driver.must(200, "POST", path+"/riders/"+riders[2].c.id+"/picked-up", nil)
	driver.must(409, "POST", path+"/riders/"+riders[3].c.id+"/no-show", nil)                      // too early
	driver.must(409, "POST", path+"/start", nil)                                                  // rider 4 still waiting
	driver.mustWithin(5*time.Second, 200, "POST", path+"/riders/"+riders[3].c.id+"/no-show", nil) // once the 1 s wait is over
	driver.must(404, "POST", path+"/riders/"+other.id+"/picked-up", nil)                          // not in the trip
	driver.must(200, "POST", path+"/start", nil)
	driver.must(409, "POST", path+"/riders/"+riders[0].c.id+"/no-show", nil)
	driver.must(200, "POST", path+"/riders/"+riders[0].c.id+"/dropped-off", nil)
	var tv tripView
	driver.do("POST", path+"/riders/"+riders[2].c.id+"/dropped-off", nil, &tv)
	if tv.Status != "completed" {
		t.Fatalf("after the last drop-off the trip is %s, want completed", tv.Status)
	}
	wantKinds := []string{"rider_joined", "rider_joined", "rider_joined", "rider_cancelled", "rider_joined", "arrived", "picked_up",
		"picked_up", "no_show", "started", "dropped_off", "dropped_off", "completed"}
	if len(tv.Events) != len(wantKinds) {
		t.Fatalf("trip events = %+v, want %v", tv.Events, wantKinds)
	}
	for i, k := range wantKinds {
		if tv.Events[i].Kind != k {
			t.Fatalf("trip event %d = %s, want %s (all: %+v)", i, tv.Events[i].Kind, k, tv.Events)
		}
	}
	driver.do("GET", "/api/v1/routes/"+routeID, nil, &rt)
	if rt["seats_free"] != float64(3) || rt["status"] != "active" {
		t.Fatalf("route after the trip = %v, want active with 3 free seats", rt)
	}
	riders[0].c.must(409, "POST", "/api/v1/ride-requests/"+riders[0].req.ID+"/cancel", nil) // a completed ride
	var elsewhere map[string]any
	if got := other.must(200, "GET", "/api/v1/ride-requests?status=waiting", nil)["ride_requests"].([]any); len(got) != 1 {
		t.Fatalf("the rider going to another area has %d waiting requests, want 1 (never matched)", len(got))
	} else {
		elsewhere = got[0].(map[string]any)
	}
	if elsewhere["trip_id"] != nil {
		t.Fatalf("the other-area request has a trip: %v", elsewhere)
	}
	for i, want := range []string{"dropped_off", "cancelled", "dropped_off", "no_show"} {
		var rr rideRequest
		riders[i].c.do("GET", "/api/v1/ride-requests/"+riders[i].req.ID, nil, &rr)
		if rr.Status != want {
			t.Errorf("rider %d's request is %s, want %s", i+1, rr.Status, want)
		}
	}
}
