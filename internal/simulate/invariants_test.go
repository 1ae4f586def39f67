package simulate

import (
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 29, 8, 0, 0, 0, time.UTC)

func at(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }

func rec(kind string, sec int, rider string) TripRecord {
	r := TripRecord{Kind: kind, At: at(sec)}
	r.Data.RiderID = rider
	return r
}

// healthy is a run where nothing went wrong: route r1 (2 seats) took a
// and b at hsr, dropped them off, then took c; c is still matched.
func healthy() View {
	return View{
		Routes: map[string]RouteState{"r1": {SeatsTotal: 2, SeatsFree: 1}},
		Trips: []TripState{
			{ID: "t1", RouteID: "r1", Status: "completed",
				Riders: []TripRider{{"a", "qa", 1, "dropped_off"}, {"b", "qb", 1, "dropped_off"}},
				Events: []TripRecord{rec("rider_joined", 1, "a"), rec("rider_joined", 2, "b"), rec("arrived", 3, ""),
					rec("picked_up", 4, "a"), rec("picked_up", 4, "b"), rec("started", 5, ""),
					rec("dropped_off", 9, "a"), rec("dropped_off", 10, "b"), rec("completed", 10, "")}},
			{ID: "t2", RouteID: "r1", Status: "scheduled",
				Riders: []TripRider{{"c", "qc", 1, "matched"}},
				Events: []TripRecord{rec("rider_joined", 10, "c")}},
		},
		Riders: map[string]RiderLog{
			"a": {Stored: []MatchedEvent{{1, "qa", "t1"}}, Received: map[int64]int{1: 1}},
			"b": {Stored: []MatchedEvent{{1, "qb", "t1"}}, Received: map[int64]int{1: 1}},
			"c": {Stored: []MatchedEvent{{1, "qc", "t2"}}, Received: map[int64]int{1: 1}},
		},
	}
}

func TestCheckInvariants(t *testing.T) {
	tests := []struct {
		name   string
		break_ func(v *View)
		failed string // the check that must fail; "" for none
		detail string
	}{
		{"a healthy run passes", func(v *View) {}, "", ""},
		{"a seat sold twice at once", func(v *View) {
			// d joins t2 while c holds the last free seat... and a third rider too.
			v.Trips[1].Riders = append(v.Trips[1].Riders, TripRider{"d", "qd", 1, "matched"}, TripRider{"e", "qe", 1, "matched"})
			v.Trips[1].Events = append(v.Trips[1].Events, rec("rider_joined", 11, "d"), rec("rider_joined", 12, "e"))
			v.Routes["r1"] = RouteState{SeatsTotal: 2, SeatsFree: 0}
		}, "seats", "3 seats"},
		{"seats taken in the past beyond the offer", func(v *View) {
			// c joined before a and b were dropped off: 3 of 2 seats at second 8.
			v.Trips[1].Events[0].At = at(8)
		}, "seats", "3 seats taken of 2"},
		{"seats_free disagrees with the riders", func(v *View) {
			v.Routes["r1"] = RouteState{SeatsTotal: 2, SeatsFree: 2}
		}, "seats", "seats_free 2"},
		{"a seat taken on a route without trips", func(v *View) {
			v.Routes["r9"] = RouteState{SeatsTotal: 3, SeatsFree: 2}
		}, "seats", "route r9: seats_free 2, but 0 of 3"},
		{"one request held by two trips", func(v *View) {
			v.Trips = append(v.Trips, TripState{ID: "t3", RouteID: "r2", Status: "scheduled",
				Riders: []TripRider{{"c", "qc", 1, "matched"}}, Events: []TripRecord{rec("rider_joined", 11, "c")}})
			v.Riders["c"] = RiderLog{Stored: []MatchedEvent{{1, "qc", "t2"}, {2, "qc", "t3"}}, Received: map[int64]int{1: 1, 2: 1}}
		}, "one_trip_per_rider", "ride request qc is in trips"},
		{"a rider in a second trip before leaving the first", func(v *View) {
			v.Trips = append(v.Trips, TripState{ID: "t3", RouteID: "r2", Status: "completed",
				Riders: []TripRider{{"a", "qa2", 1, "dropped_off"}},
				Events: []TripRecord{rec("rider_joined", 5, "a"), rec("dropped_off", 7, "a"), rec("completed", 7, "")}})
			v.Riders["a"] = RiderLog{Stored: []MatchedEvent{{1, "qa", "t1"}, {2, "qa2", "t3"}}, Received: map[int64]int{1: 1, 2: 1}}
		}, "one_trip_per_rider", "rider a is in trip"},
		{"a match told twice", func(v *View) {
			v.Riders["c"].Received[1] = 2
		}, "told_once", "2 times"},
		{"a match never received", func(v *View) {
			delete(v.Riders["b"].Received, 1)
		}, "told_once", "0 times"},
		{"a match stored twice", func(v *View) {
			v.Riders["c"] = RiderLog{Stored: []MatchedEvent{{1, "qc", "t2"}, {2, "qc", "t2"}}, Received: map[int64]int{1: 1, 2: 1}}
		}, "told_once", "2 ride.matched events"},
		{"told of a match no trip records", func(v *View) {
			v.Riders["c"] = RiderLog{Stored: []MatchedEvent{{1, "qc", "t2"}, {2, "qx", "t9"}}, Received: map[int64]int{1: 1, 2: 1}}
		}, "told_once", "no trip records"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := healthy()
			tt.break_(&v)
			got := CheckInvariants(v)
			if got.OK != (tt.failed == "") {
				t.Fatalf("OK = %v, want %v: %+v", got.OK, tt.failed == "", got.Checks)
			}
			for _, c := range got.Checks {
				if c.Checked == 0 {
					t.Errorf("check %s checked nothing", c.Name)
				}
				if (c.Name == tt.failed) == c.OK {
					t.Errorf("check %s: OK = %v, want %v (%v)", c.Name, c.OK, c.Name != tt.failed, c.Examples)
				}
				if c.Name == tt.failed && !strings.Contains(strings.Join(c.Examples, "\n"), tt.detail) {
					t.Errorf("check %s examples %q lack %q", c.Name, c.Examples, tt.detail)
				}
			}
		})
	}
}
