package simulate

import (
	"fmt"
	"sort"
	"time"
)

// View is what the invariant checks read: the trips of the run with their
// recorded events, the routes the run published (whose whole history those
// trips hold), and each simulated rider's event log and what its client
// received. It is gathered over the public API at the end of a run.
type View struct {
	Routes map[string]RouteState `json:"routes"`
	Trips  []TripState           `json:"trips"`
	Riders map[string]RiderLog   `json:"riders"`
}

// RouteState is a route's seats as the server reports them.
type RouteState struct {
	SeatsTotal int `json:"seats_total"`
	SeatsFree  int `json:"seats_free"`
}

// TripState is a trip as GET /api/v1/trips shows it.
type TripState struct {
	ID      string       `json:"id"`
	RouteID string       `json:"route_id"`
	Status  string       `json:"status"`
	Riders  []TripRider  `json:"riders"`
	Events  []TripRecord `json:"events"`
}

// TripRider is one rider entry of a trip.
type TripRider struct {
	RiderID   string `json:"rider_id"`
	RequestID string `json:"ride_request_id"`
	PartySize int    `json:"party_size"`
	Status    string `json:"status"`
}

// TripRecord is one recorded move of a trip.
type TripRecord struct {
	Kind string    `json:"kind"`
	At   time.Time `json:"at"`
	Data struct {
		RiderID string `json:"rider_id"`
	} `json:"data"`
}

// RiderLog is one rider's ride.matched events: those the server keeps
// (Stored) and, by event number, how many times the client received each
// (Received).
type RiderLog struct {
	Stored   []MatchedEvent `json:"stored"`
	Received map[int64]int  `json:"received"`
}

// MatchedEvent is one ride.matched event.
type MatchedEvent struct {
	Seq       int64  `json:"seq"`
	RequestID string `json:"ride_request_id"`
	TripID    string `json:"trip_id"`
}

// Check is the result of one invariant.
type Check struct {
	Name       string   `json:"name"`
	OK         bool     `json:"ok"`
	Checked    int      `json:"checked"`
	Violations int      `json:"violations"`
	Examples   []string `json:"examples,omitempty"`
}

func (c *Check) fail(format string, args ...any) {
	c.OK = false
	c.Violations++
	if len(c.Examples) < 10 {
		c.Examples = append(c.Examples, fmt.Sprintf(format, args...))
	}
}

// Invariants is the verdict on a run.
type Invariants struct {
	OK bool `json:"ok"`
	// Source says whose view was read: "operator" (every trip) or
	// "participants" (the simulated users' own).
	Source string  `json:"source"`
	Checks []Check `json:"checks"`
	// Error, when set, says why the view could not be read (OK is false).
	Error string `json:"error,omitempty"`
}

// CheckInvariants checks the rules that must always hold over v:
//   - seats: no route ever had more seats taken than it offers, and its
//     seats_free agrees with the riders holding seats now;
//   - one_trip_per_rider: no ride request, and no rider, is ever in two
//     trips at once;
//   - told_once: every match of a simulated rider is one ride.matched
//     event, received by the rider exactly once, and every ride.matched
//     is a match.
func CheckInvariants(v View) Invariants {
	out := Invariants{OK: true, Checks: []Check{checkSeats(v), checkOneTrip(v), checkToldOnce(v)}}
	for _, c := range out.Checks {
		out.OK = out.OK && c.OK
	}
	return out
}

func holdsSeats(status string) bool { return status == "matched" || status == "picked_up" }

func live(status string) bool { return status == "scheduled" || status == "active" }

// partyOf is the party size of rider in trip t (1 if unknown).
func partyOf(t TripState, rider string) int {
	for _, r := range t.Riders {
		if r.RiderID == rider && r.PartySize > 0 {
			return r.PartySize
		}
	}
	return 1
}

type seatMove struct {
	at    time.Time
	delta int
	what  string
}

func checkSeats(v View) Check {
	c := Check{Name: "seats", OK: true}
	byRoute := map[string][]TripState{}
	for _, t := range v.Trips {
		byRoute[t.RouteID] = append(byRoute[t.RouteID], t)
	}
	// Every route read, with or without trips (one without must have every
	// seat free).
	ids := make([]string, 0, len(v.Routes))
	for id := range v.Routes {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		route, ok := v.Routes[id]
		if !ok {
			continue
		}
		c.Checked++
		// Now: the riders holding seats agree with seats_free.
		held := 0
		for _, t := range byRoute[id] {
			if !live(t.Status) {
				continue
			}
			for _, r := range t.Riders {
				if holdsSeats(r.Status) || (t.Status == "active" && r.Status == "dropped_off") {
					held += r.PartySize
				}
			}
		}
		if held > route.SeatsTotal {
			c.fail("route %s: %d seats held now, %d offered", id, held, route.SeatsTotal)
		}
		if route.SeatsFree < 0 || route.SeatsFree != route.SeatsTotal-held {
			c.fail("route %s: seats_free %d, but %d of %d seats are held", id, route.SeatsFree, held, route.SeatsTotal)
		}
		// Ever: replay the trips' records in time order.
		var moves []seatMove
		for _, t := range byRoute[id] {
			for _, e := range t.Events {
				switch e.Kind {
				case "rider_joined":
					moves = append(moves, seatMove{e.At, partyOf(t, e.Data.RiderID), "trip " + t.ID + " took rider " + e.Data.RiderID})
				case "rider_cancelled", "no_show", "rider_released":
					moves = append(moves, seatMove{e.At, -partyOf(t, e.Data.RiderID), ""})
				case "completed":
					freed := 0
					for _, r := range t.Riders {
						if r.Status == "dropped_off" {
							freed += r.PartySize
						}
					}
					moves = append(moves, seatMove{e.At, -freed, ""})
				}
			}
		}
		// At the same instant, seats given back count first.
		sort.SliceStable(moves, func(i, j int) bool {
			if !moves[i].at.Equal(moves[j].at) {
				return moves[i].at.Before(moves[j].at)
			}
			return moves[i].delta < moves[j].delta
		})
		taken := 0
		for _, m := range moves {
			taken += m.delta
			if taken > route.SeatsTotal {
				c.fail("route %s: %d seats taken of %d at %s (%s)", id, taken, route.SeatsTotal, m.at.Format(time.RFC3339Nano), m.what)
				break
			}
		}
	}
	return c
}

type stay struct {
	from, to time.Time
	trip     string
}

func checkOneTrip(v View) Check {
	c := Check{Name: "one_trip_per_rider", OK: true}
	holdingReq := map[string]string{} // request → trip holding it now
	stays := map[string][]stay{}      // rider → time in trips
	for _, t := range v.Trips {
		for _, r := range t.Riders {
			if live(t.Status) && holdsSeats(r.Status) {
				if other, ok := holdingReq[r.RequestID]; ok {
					c.fail("ride request %s is in trips %s and %s", r.RequestID, other, t.ID)
				}
				holdingReq[r.RequestID] = t.ID
			}
		}
		open := map[string]time.Time{}
		for _, e := range t.Events {
			rider := e.Data.RiderID
			switch e.Kind {
			case "rider_joined":
				open[rider] = e.At
			case "rider_cancelled", "no_show", "rider_released", "dropped_off":
				if from, ok := open[rider]; ok {
					stays[rider] = append(stays[rider], stay{from, e.At, t.ID})
					delete(open, rider)
				}
			}
		}
		for rider, from := range open {
			stays[rider] = append(stays[rider], stay{from, time.Time{}, t.ID})
		}
	}
	riders := make([]string, 0, len(stays))
	for r := range stays {
		riders = append(riders, r)
	}
	sort.Strings(riders)
	for _, rider := range riders {
		c.Checked++
		ss := stays[rider]
		sort.Slice(ss, func(i, j int) bool { return ss[i].from.Before(ss[j].from) })
		for i := 1; i < len(ss); i++ {
			prev := ss[i-1]
			if prev.to.IsZero() || ss[i].from.Before(prev.to) {
				c.fail("rider %s is in trip %s (from %s) while still in trip %s", rider, ss[i].trip, ss[i].from.Format(time.RFC3339Nano), prev.trip)
			}
		}
	}
	return c
}

func checkToldOnce(v View) Check {
	c := Check{Name: "told_once", OK: true}
	type pair struct{ request, trip string }
	matches := map[string]map[pair]bool{} // rider → matches from the trips
	for _, t := range v.Trips {
		for _, r := range t.Riders {
			if matches[r.RiderID] == nil {
				matches[r.RiderID] = map[pair]bool{}
			}
			matches[r.RiderID][pair{r.RequestID, t.ID}] = true
		}
	}
	riders := make([]string, 0, len(v.Riders))
	for id := range v.Riders {
		riders = append(riders, id)
	}
	sort.Strings(riders)
	for _, rider := range riders {
		log := v.Riders[rider]
		stored := map[pair][]int64{}
		for _, e := range log.Stored {
			p := pair{e.RequestID, e.TripID}
			stored[p] = append(stored[p], e.Seq)
			if !matches[rider][p] {
				c.fail("rider %s was told of a match (event %d, request %s, trip %s) that no trip records", rider, e.Seq, e.RequestID, e.TripID)
			}
		}
		for p := range matches[rider] {
			c.Checked++
			seqs := stored[p]
			if len(seqs) != 1 {
				c.fail("rider %s has %d ride.matched events for request %s in trip %s, want 1", rider, len(seqs), p.request, p.trip)
				continue
			}
			if n := log.Received[seqs[0]]; n != 1 {
				c.fail("rider %s received ride.matched (event %d, trip %s) %d times, want once", rider, seqs[0], p.trip, n)
			}
		}
	}
	return c
}
