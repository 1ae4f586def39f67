package main

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/lastmile/lastmile/internal/notify/notifytest"
	"github.com/lastmile/lastmile/internal/postgres/pgtest"
)

// approachEvery is the server's default --approach-every: a driver inside a
// station's radius is offered to matching again this often. A rider matched
// later than this after the driver's crossing waited for a second round.
const approachEvery = 5 * time.Second

// signUpFrom signs a user up as if through a load balancer from addr, so a
// scene of many users stays under the per-address sign-up limit.
func signUpFrom(tb testing.TB, s *server, addr, role, name string) *client {
	tb.Helper()
	c := &client{tb: tb, base: s.URL, role: role}
	email := fmt.Sprintf("%s-%d-%d@example.com", name, time.Now().UnixNano(), emailSeq.Add(1))
	var sess struct {
		Token string `json:"token"`
		User  struct {
			ID string `json:"id"`
		} `json:"user"`
	}
	body := map[string]any{"email": email, "password": "long enough 1", "name": name, "role": role}
	if code := c.do("POST", "/api/v1/auth/signup", body, &sess, "X-Forwarded-For", addr); code != 201 {
		tb.Fatalf("sign up %s: %d", name, code)
	}
	c.token, c.id = sess.Token, sess.User.ID
	return c
}

// crowdDriver and crowdRider are the people of a rush-hour scene.
type crowdDriver struct {
	c       *client
	ws      *notifytest.Socket
	seats   int
	crossed time.Time
}

type crowdRider struct {
	c     *client
	ws    *notifytest.Socket
	rank  int // 0 is the earliest arrival
	party int
	req   string
}

// crowdResult is what the riders saw.
type crowdResult struct {
	matched map[int]time.Duration // rank -> crossing of its driver to ride.matched
	twice   []int                 // ranks told ride.matched more than once
}

// hsrSouth is the point m metres south of the HSR station.
func hsrSouth(m float64) float64 { return hsrLat - m/111195 }

// runCrowd plays the scene of issue 14 on two replicas of one database:
// one driver per entry of seats and one rider per entry of parties, all at
// HSR for the same destination, riders arriving 5 s apart (parties[0]
// first) with their requests created in shuffled order, people spread
// over both replicas. The drivers then cross into the station's radius in
// the same second and send a fix a second for four more seconds. It
// returns, per rider matched, the time from its driver's crossing to the
// rider's ride.matched, and checks what must hold whatever the order:
// every driver told trip.assigned, no seat oversold.
func runCrowd(t *testing.T, seats, parties []int) ([]*crowdDriver, []*crowdRider, crowdResult) {
	t.Helper()
	url := pgtest.URL(t)
	env := map[string]string{"LASTMILE_TRUSTED_PROXIES": "127.0.0.1"}
	replicas := []*server{startServer(t, url, env), startServer(t, url, env)}
	addr := func(i int) string { return fmt.Sprintf("10.14.%d.%d", i/200, i%200+1) }

	riders := make([]*crowdRider, len(parties))
	base := time.Now().Add(30 * time.Second)
	for k, rank := range rand.Perm(len(parties)) { // requests created in shuffled order
		s := replicas[k%2]
		c := signUpFrom(t, s, addr(k), "rider", fmt.Sprintf("rider%d", rank))
		r := &crowdRider{c: c, ws: c.connect(""), rank: rank, party: parties[rank]}
		req := c.must(201, "POST", "/api/v1/ride-requests", map[string]any{"station_id": hsrStation, "destination_area_id": areaA,
			"arrival_time": base.Add(time.Duration(rank) * 5 * time.Second).UTC().Format(time.RFC3339), "party_size": r.party})
		r.req = req["id"].(string)
		riders[rank] = r
	}
	drivers := make([]*crowdDriver, len(seats))
	for i, n := range seats {
		s := replicas[(i+1)%2]
		c := signUpFrom(t, s, addr(len(parties)+i), "driver", fmt.Sprintf("driver%d", i))
		drivers[i] = &crowdDriver{c: c, ws: c.connect(""), seats: n}
		c.must(201, "POST", "/api/v1/routes", map[string]any{"station_ids": []string{hsrStation}, "destination_area_id": areaA, "seats": n})
	}
	// Each driver is seen 1 km south (outside the 800 m radius) ten seconds
	// ago, so its replica knows its route before the crossing.
	for _, d := range drivers {
		d.ws.Send(map[string]any{"type": "location", "lat": hsrSouth(1000), "lng": hsrLng,
			"at": time.Now().Add(-10 * time.Second).UTC().Format(time.RFC3339Nano), "speed_mps": 20})
	}
	time.Sleep(1500 * time.Millisecond)

	// All cross into the radius in the same second, then drive on slowly,
	// a fix a second, until every seat is taken or the next approach round
	// is due.
	crossed := map[string]time.Time{}
	total := 0
	for _, d := range drivers {
		d.crossed = time.Now()
		crossed[d.c.id] = d.crossed
		total += d.seats
		d.ws.Send(map[string]any{"type": "location", "lat": hsrSouth(750), "lng": hsrLng,
			"at": d.crossed.UTC().Format(time.RFC3339Nano), "speed_mps": 20})
	}
	res := crowdResult{matched: map[int]time.Duration{}}
	told := map[int]int{} // rank -> ride.matched messages
	taken := 0
	take := func(r *crowdRider, e notifytest.Message) {
		if told[r.rank]++; told[r.rank] > 1 {
			res.twice = append(res.twice, r.rank)
			return
		}
		m := notifytest.Decode[struct {
			Driver struct {
				ID string `json:"id"`
			} `json:"driver"`
			ReqID string `json:"ride_request_id"`
		}](t, e)
		if m.ReqID != r.req {
			t.Errorf("rider %d told ride.matched for request %s, want %s", r.rank, m.ReqID, r.req)
		}
		res.matched[r.rank] = e.Recv.Sub(crossed[m.Driver.ID])
		taken += r.party
	}
	deadline := drivers[len(drivers)-1].crossed.Add(approachEvery + 500*time.Millisecond)
	for sec := 1; taken < total && time.Now().Before(deadline); {
		if due := drivers[0].crossed.Add(time.Duration(sec) * time.Second); sec <= 4 && time.Now().After(due) {
			for _, d := range drivers {
				d.ws.Send(map[string]any{"type": "location", "lat": hsrSouth(750 - 15*float64(sec)), "lng": hsrLng,
					"at": time.Now().UTC().Format(time.RFC3339Nano), "speed_mps": 15})
			}
			sec++
		}
		for _, r := range riders {
			for drained := false; !drained; {
				select {
				case e, ok := <-r.ws.Messages():
					if !ok {
						t.Fatalf("rider %d's socket closed", r.rank)
					}
					if e.Kind == "ride.matched" {
						take(r, e)
					}
				default:
					drained = true
				}
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	// A rider told twice would be told at about the same time.
	for _, r := range riders {
		if e, ok := r.ws.Poll("ride.matched", 20*time.Millisecond); ok {
			take(r, e)
		}
	}
	for i, d := range drivers {
		var rt map[string]any
		d.c.do("GET", "/api/v1/routes/current", nil, &rt)
		if free, _ := rt["seats_free"].(float64); free < 0 || free > float64(d.seats) {
			t.Errorf("driver %d has %v free seats of %d", i, rt["seats_free"], d.seats)
		}
	}
	return drivers, riders, res
}

// report logs the crowd's numbers: riders matched in time, wrong order, and
// the crossing-to-matched latencies.
func (res crowdResult) report(t *testing.T, want []int) {
	t.Helper()
	var lat []time.Duration
	wrong := 0
	for rank, d := range res.matched {
		lat = append(lat, d)
		if !slices.Contains(want, rank) {
			wrong++
		}
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(p*float64(len(lat))))]
	}
	t.Logf("riders matched %d of %d expected; wrong order %d; crossing to ride.matched p50 %v p99 %v max %v",
		len(res.matched), len(want), wrong, pct(0.50).Round(time.Millisecond), pct(0.99).Round(time.Millisecond), pct(1).Round(time.Millisecond))
}

// check asserts that exactly the riders of want were matched, each once,
// each before its driver's next approach round.
func (res crowdResult) check(t *testing.T, want []int) {
	t.Helper()
	res.report(t, want)
	if len(res.twice) > 0 {
		t.Errorf("riders told ride.matched twice: %v", res.twice)
	}
	var got []int
	for rank, d := range res.matched {
		got = append(got, rank)
		if d >= approachEvery {
			t.Errorf("rider %d matched %v after its driver's crossing: it waited for another approach round", rank, d)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("riders matched (by arrival rank) = %v, want %v", got, want)
	}
}

// wantRoutesFull asserts every driver's seats are all taken, and that the
// driver was told who fills them (trip.assigned).
func wantRoutesFull(t *testing.T, drivers []*crowdDriver) {
	t.Helper()
	for i, d := range drivers {
		var rt map[string]any
		d.c.do("GET", "/api/v1/routes/current", nil, &rt)
		if rt["seats_free"] != float64(0) {
			t.Errorf("driver %d (%d seats) has %v free after the crowd: it drove on with empty seats", i, d.seats, rt["seats_free"])
		}
		told := 0
		for {
			e, ok := d.ws.Poll("trip.assigned", 20*time.Millisecond)
			if !ok {
				break
			}
			for _, r := range notifytest.Decode[struct {
				Riders []struct {
					PartySize int `json:"party_size"`
				} `json:"riders"`
			}](t, e).Riders {
				told += r.PartySize
			}
		}
		if told != d.seats {
			t.Errorf("driver %d (%d seats) was told of riders for %d seats", i, d.seats, told)
		}
	}
}

// The scene of issue 14: ten drivers with two free seats each cross into
// one station's radius in the same second while forty riders wait there
// for the same destination. Within a second or so all twenty seats go to
// exactly the twenty earliest arrivals, whichever replica each is on.
func TestRushHourAtOneStation(t *testing.T) {
	seats := slices.Repeat([]int{2}, 10)
	parties := slices.Repeat([]int{1}, 40)
	drivers, riders, res := runCrowd(t, seats, parties)
	want := make([]int, 20)
	for i := range want {
		want[i] = i
	}
	res.check(t, want)
	wantRoutesFull(t, drivers)
	for _, r := range riders[20:] {
		var rr rideRequest
		r.c.do("GET", "/api/v1/ride-requests/"+r.req, nil, &rr)
		if rr.Status != "waiting" {
			t.Errorf("rider %d (a later arrival) is %s, want waiting", r.rank, rr.Status)
		}
	}
}

// crowdParties are the parties of the mixed scene in arrival order, chosen
// so that the riders matched do not depend on which driver's match runs
// first (TestRushHourPartiesAndMixedSeats checks that it does not).
var crowdParties = []int{4, 3, 2, 2, 2, 2, 1, 3, 1, 2, 1, 2, 1, 2, 2, 1, 3, 2, 2, 2, 1, 1, 1, 3, 1, 1, 4, 3, 2, 2}

// fitInOrder is the rule as a driver applies it when its match runs:
// oldest parties first, each whole, skipping one too big for the seats
// left. It returns the ranks taken by the drivers, matched in order.
func fitInOrder(parties, seats, order []int) []int {
	taken := map[int]bool{}
	for _, d := range order {
		free := seats[d]
		for rank, p := range parties {
			if free == 0 {
				break
			}
			if !taken[rank] && p <= free {
				taken[rank] = true
				free -= p
			}
		}
	}
	var out []int
	for rank := range taken {
		out = append(out, rank)
	}
	slices.Sort(out)
	return out
}

// permutations calls f with every order of 0..n-1.
func permutations(n int, f func([]int)) {
	var rec func(p []int, k int)
	rec = func(p []int, k int) {
		if k == len(p) {
			f(p)
			return
		}
		for i := k; i < len(p); i++ {
			p[k], p[i] = p[i], p[k]
			rec(p, k+1)
			p[k], p[i] = p[i], p[k]
		}
	}
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	rec(p, 0)
}

// Parties of one to four and drivers with one to four seats: every party
// travels whole, the oldest that fit are taken, and the set matched is
// exactly the one the rule gives.
func TestRushHourPartiesAndMixedSeats(t *testing.T) {
	seats := []int{4, 3, 2, 1, 2, 3}
	var want []int
	permutations(len(seats), func(order []int) {
		got := fitInOrder(crowdParties, seats, order)
		if want == nil {
			want = got
		} else if !slices.Equal(got, want) {
			t.Fatalf("the scene is not order-free: drivers in order %v take %v, others %v", order, got, want)
		}
	})
	drivers, _, res := runCrowd(t, seats, crowdParties)
	res.check(t, want)
	wantRoutesFull(t, drivers)
}

// A driver drives into the radius while nobody waits; a rider asks a
// moment later on the other replica and is matched at once, not at the
// driver's next approach round.
func TestDriverPassesThenRiderAsks(t *testing.T) {
	url := pgtest.URL(t)
	a, b := startServer(t, url, nil), startServer(t, url, nil)
	drv := signUp(t, a, "driver", "D")
	dws := drv.connect("")
	drv.must(201, "POST", "/api/v1/routes", map[string]any{"station_ids": []string{hsrStation}, "destination_area_id": areaA, "seats": 2})
	rdr := signUp(t, b, "rider", "R")
	rws := rdr.connect("")
	dws.Send(map[string]any{"type": "location", "lat": hsrSouth(1000), "lng": hsrLng,
		"at": time.Now().Add(-10 * time.Second).UTC().Format(time.RFC3339Nano), "speed_mps": 20})
	time.Sleep(time.Second) // the replica reads the route
	crossed := time.Now()
	dws.Send(map[string]any{"type": "location", "lat": hsrSouth(750), "lng": hsrLng, "at": crossed.UTC().Format(time.RFC3339Nano), "speed_mps": 20})

	time.Sleep(1500 * time.Millisecond) // nobody waits: the crossing matched nothing
	dws.Send(map[string]any{"type": "location", "lat": hsrSouth(740), "lng": hsrLng, "at": time.Now().UTC().Format(time.RFC3339Nano), "speed_mps": 5})
	asked := time.Now()
	req := rdr.must(201, "POST", "/api/v1/ride-requests", map[string]any{"station_id": hsrStation, "destination_area_id": areaA, "arrival_time": arrival(time.Minute)})
	e := rws.NextOf("event", "ride.matched", approachEvery)
	if m := notifytest.Decode[map[string]any](t, e); m["ride_request_id"] != req["id"] {
		t.Fatalf("ride.matched = %s", e.Data)
	}
	t.Logf("request to ride.matched %v", e.Recv.Sub(asked).Round(time.Millisecond))
	if e.Recv.After(crossed.Add(approachEvery)) {
		t.Fatalf("matched %v after the crossing: it waited for the driver's next approach round, not the request", e.Recv.Sub(crossed))
	}
	dws.NextOf("event", "trip.assigned", 5*time.Second)
}

// A driver whose phone first reports where it was 50 km away (a stale
// position, or a reconnect from elsewhere) is refused twice near the
// station, then the fixes that agree move its track and the waiting rider
// is matched; one jump back is refused again.
func TestDriverReanchoredAfterAFarFix(t *testing.T) {
	s := startServer(t, pgtest.URL(t), nil)
	drv := signUp(t, s, "driver", "D")
	dws := drv.connect("")
	drv.must(201, "POST", "/api/v1/routes", map[string]any{"station_ids": []string{hsrStation}, "destination_area_id": areaA, "seats": 2})
	rdr := signUp(t, s, "rider", "R")
	rws := rdr.connect("")
	rdr.must(201, "POST", "/api/v1/ride-requests", map[string]any{"station_id": hsrStation, "destination_area_id": areaA, "arrival_time": arrival(time.Minute)})

	fix := func(southM float64, at time.Time) {
		dws.Send(map[string]any{"type": "location", "lat": hsrSouth(southM), "lng": hsrLng, "at": at.UTC().Format(time.RFC3339Nano)})
	}
	start := time.Now().Add(-5 * time.Second)
	fix(50_000, start)
	for i := range 2 {
		fix(700-float64(10*i), start.Add(time.Duration(i+1)*time.Second))
		if e := dws.NextOf("error", "", 5*time.Second); e.Code != "implausible_speed" {
			t.Fatalf("fix %d near the station = %+v, want implausible_speed", i+1, e)
		}
	}
	rws.None("ride.matched", 200*time.Millisecond)
	fix(680, start.Add(3*time.Second)) // the third that agrees
	rws.NextOf("event", "ride.matched", 5*time.Second)
	fix(50_000, start.Add(4*time.Second))
	if e := dws.NextOf("error", "", 5*time.Second); e.Code != "implausible_speed" {
		t.Fatalf("one jump back = %+v, want implausible_speed", e)
	}
}
