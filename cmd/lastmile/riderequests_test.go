package main

import (
	"testing"
	"time"

	"github.com/lastmile/lastmile/internal/notify/notifytest"
	"github.com/lastmile/lastmile/internal/postgres/pgtest"
)

func TestRideRequestsRulesAndOwnership(t *testing.T) {
	url := pgtest.URL(t)
	s := startServer(t, url, nil)
	r1, r2 := signUp(t, s, "rider", "R1"), signUp(t, s, "rider", "R2")
	d1 := signUp(t, s, "driver", "D1")
	ops := operator(t, s, url)
	body := map[string]any{"station_id": hsrStation, "destination_area_id": areaA, "arrival_time": arrival(10 * time.Minute)}

	ws1 := r1.connect("")
	req := r1.must(201, "POST", "/api/v1/ride-requests", body)
	if req["status"] != "waiting" || req["party_size"] != float64(1) || req["rider_id"] != r1.id {
		t.Fatalf("request = %v", req)
	}
	id := req["id"].(string)
	r1.must(409, "POST", "/api/v1/ride-requests", body)
	d1.must(403, "POST", "/api/v1/ride-requests", body)
	r2.must(404, "GET", "/api/v1/ride-requests/"+id, nil)
	r2.must(404, "POST", "/api/v1/ride-requests/"+id+"/cancel", nil)
	if got := ops.must(200, "GET", "/api/v1/ride-requests/"+id, nil); got["id"] != id {
		t.Fatalf("operator get = %v", got)
	}

	tests := []struct {
		name   string
		body   map[string]any
		fields []string
	}{
		{"empty", map[string]any{}, []string{"station_id", "destination_area_id", "arrival_time"}},
		{"too far in the past", map[string]any{"station_id": hsrStation, "destination_area_id": areaA, "arrival_time": arrival(-11 * time.Minute)}, []string{"arrival_time"}},
		{"too far ahead", map[string]any{"station_id": hsrStation, "destination_area_id": areaA, "arrival_time": arrival(25 * time.Hour)}, []string{"arrival_time"}},
		{"not a time", map[string]any{"station_id": hsrStation, "destination_area_id": areaA, "arrival_time": "tomorrow"}, []string{"arrival_time"}},
		{"party of five", map[string]any{"station_id": hsrStation, "destination_area_id": areaA, "arrival_time": arrival(time.Minute), "party_size": 5}, []string{"party_size"}},
		{"party of zero", map[string]any{"station_id": hsrStation, "destination_area_id": areaA, "arrival_time": arrival(time.Minute), "party_size": 0}, []string{"party_size"}},
		{"unknown station", map[string]any{"station_id": "atlantis", "destination_area_id": areaA, "arrival_time": arrival(time.Minute)}, []string{"station_id"}},
		{"unknown area", map[string]any{"station_id": hsrStation, "destination_area_id": "nowhere", "arrival_time": arrival(time.Minute)}, []string{"destination_area_id"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantFields(t, r2.must(422, "POST", "/api/v1/ride-requests", tt.body), tt.fields...)
		})
	}
	r2.must(400, "POST", "/api/v1/ride-requests", `{"station_id":"hsr","destination_area_id":"kudlu-gate","arrival_time":"`+arrival(time.Minute)+`","status":"matched"}`)
	if got := r2.must(200, "GET", "/api/v1/ride-requests", nil); len(got["ride_requests"].([]any)) != 0 {
		t.Fatalf("rejected requests were stored: %v", got)
	}

	// Idempotency-Key: replay, conflict, and per-user scope.
	var a, b map[string]any
	r2.do("POST", "/api/v1/ride-requests", body, &a, "Idempotency-Key", "k1")
	if code := r2.do("POST", "/api/v1/ride-requests", body, &b, "Idempotency-Key", "k1"); code != 201 || b["id"] != a["id"] {
		t.Fatalf("replay = %d %v, want the first answer %v", code, b, a)
	}
	if code := r2.do("POST", "/api/v1/ride-requests", map[string]any{"station_id": hsrStation, "destination_area_id": areaB, "arrival_time": arrival(time.Minute)}, nil, "Idempotency-Key", "k1"); code != 422 {
		t.Fatalf("same key, other body = %d, want 422", code)
	}

	// Cancel a waiting request: the rider hears of it; twice is a conflict.
	if got := r1.must(200, "POST", "/api/v1/ride-requests/"+id+"/cancel", nil); got["status"] != "cancelled" {
		t.Fatalf("cancel = %v", got)
	}
	ws1.NextOf("event", "ride.cancelled", 5*time.Second)
	r1.must(409, "POST", "/api/v1/ride-requests/"+id+"/cancel", nil)

	// History: own only, newest first, in pages.
	for range 2 {
		req := r1.must(201, "POST", "/api/v1/ride-requests", body)
		r1.must(200, "POST", "/api/v1/ride-requests/"+req["id"].(string)+"/cancel", nil)
	}
	page1 := r1.must(200, "GET", "/api/v1/ride-requests?limit=2", nil)
	items := page1["ride_requests"].([]any)
	if len(items) != 2 || page1["next_cursor"] == nil {
		t.Fatalf("page 1 = %v", page1)
	}
	page2 := r1.must(200, "GET", "/api/v1/ride-requests?limit=2&cursor="+page1["next_cursor"].(string), nil)
	rest := page2["ride_requests"].([]any)
	if len(rest) != 1 || page2["next_cursor"] != nil || rest[0].(map[string]any)["id"] != id {
		t.Fatalf("page 2 = %v, want only the first request", page2)
	}
	for _, it := range append(items, rest...) {
		if it.(map[string]any)["rider_id"] != r1.id {
			t.Fatalf("history shows someone else's request: %v", it)
		}
	}
	wantFields(t, r1.must(422, "GET", "/api/v1/ride-requests?limit=500", nil), "limit")
	wantFields(t, r1.must(422, "GET", "/api/v1/ride-requests?status=lost", nil), "status")
	if got := r1.must(200, "GET", "/api/v1/ride-requests?status=waiting", nil); len(got["ride_requests"].([]any)) != 0 {
		t.Fatalf("status filter: %v", got)
	}
	all := ops.must(200, "GET", "/api/v1/ride-requests?limit=100", nil)["ride_requests"].([]any)
	if len(all) != 4 {
		t.Fatalf("the operator sees %d requests, want all 4", len(all))
	}
}

func TestWaitingRequestsExpire(t *testing.T) {
	s := startServer(t, pgtest.URL(t), map[string]string{"LASTMILE_REQUEST_EXPIRY": "1s"})
	r1 := signUp(t, s, "rider", "R1")
	ws := r1.connect("")
	req := r1.must(201, "POST", "/api/v1/ride-requests", map[string]any{"station_id": hsrStation, "destination_area_id": areaA, "arrival_time": arrival(-5 * time.Minute)})
	e := ws.NextOf("event", "ride.expired", 5*time.Second)
	if got := notifytest.Decode[map[string]any](t, e)["ride_request"].(map[string]any); got["id"] != req["id"] || got["status"] != "expired" {
		t.Fatalf("ride.expired = %s", e.Data)
	}
	r1.must(409, "POST", "/api/v1/ride-requests/"+req["id"].(string)+"/cancel", nil)
	r1.must(201, "POST", "/api/v1/ride-requests", map[string]any{"station_id": hsrStation, "destination_area_id": areaA, "arrival_time": arrival(time.Hour)})
}
