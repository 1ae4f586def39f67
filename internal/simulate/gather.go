package simulate

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
)

// gather reads the invariant checks' view over the API: the trips (every
// trip since the run started, with an operator token; otherwise each
// simulated user's own), their routes, and each rider's ride.matched
// events.
func (w *world) gather(ctx context.Context) (View, string, error) {
	v := View{Routes: map[string]RouteState{}, Riders: map[string]RiderLog{}}
	source := "operator"
	tokens := []string{w.operatorToken}
	if w.operatorToken == "" {
		source = "participants"
		tokens = tokens[:0]
		for _, d := range w.drivers {
			tokens = append(tokens, d.token)
		}
		for _, r := range w.riders {
			tokens = append(tokens, r.token)
		}
	}
	var mu sync.Mutex
	trips := map[string]TripState{}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for _, tok := range tokens {
		g.Go(func() error {
			ts, err := w.listTrips(gctx, tok)
			mu.Lock()
			for _, t := range ts {
				trips[t.ID] = t
			}
			mu.Unlock()
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return v, source, err
	}
	for _, t := range trips {
		v.Trips = append(v.Trips, t)
	}
	// Seats are checked on the routes this run published: their whole
	// history is in the trips read (another user's route may have trips
	// from before the run).
	w.mu.Lock()
	routes := make(map[string]string, len(w.routes))
	for id, tok := range w.routes {
		routes[id] = tok
	}
	w.mu.Unlock()
	g, gctx = errgroup.WithContext(ctx)
	g.SetLimit(16)
	for routeID, tok := range routes {
		if w.operatorToken != "" {
			tok = w.operatorToken
		}
		g.Go(func() error {
			var r RouteState
			if err := w.api.do(gctx, http.MethodGet, "/api/v1/routes/"+routeID, tok, nil, &r); err != nil {
				return fmt.Errorf("read route %s: %w", routeID, err)
			}
			mu.Lock()
			v.Routes[routeID] = r
			mu.Unlock()
			return nil
		})
	}
	for _, r := range w.riders {
		g.Go(func() error {
			log, err := r.log(gctx)
			if err != nil {
				return fmt.Errorf("read the events of rider %s: %w", r.id, err)
			}
			mu.Lock()
			v.Riders[r.id] = log
			mu.Unlock()
			return nil
		})
	}
	return v, source, g.Wait()
}

// listTrips reads the trips token may see that were created since the run
// began (lists are newest first).
func (w *world) listTrips(ctx context.Context, token string) ([]TripState, error) {
	var out []TripState
	cursor := ""
	for {
		var page struct {
			Trips      []tripWithCreated `json:"trips"`
			NextCursor string            `json:"next_cursor"`
		}
		path := "/api/v1/trips?limit=100"
		if cursor != "" {
			path += "&cursor=" + url.QueryEscape(cursor)
		}
		if err := w.api.do(ctx, http.MethodGet, path, token, nil, &page); err != nil {
			return out, fmt.Errorf("list trips: %w", err)
		}
		for _, t := range page.Trips {
			if t.CreatedAt.Before(w.began.Add(-time.Minute)) {
				return out, nil
			}
			out = append(out, t.TripState)
		}
		if page.NextCursor == "" {
			return out, nil
		}
		cursor = page.NextCursor
	}
}

type tripWithCreated struct {
	TripState
	CreatedAt time.Time `json:"created_at"`
}

// log reads the rider's ride.matched events as the server keeps them,
// after taking any event its socket has not delivered yet (as a client
// that polls would).
func (r *riderAgent) log(ctx context.Context) (RiderLog, error) {
	out := RiderLog{Received: map[int64]int{}}
	since := int64(0)
	caughtUp := r.sock.last()
	for {
		var page struct {
			Events     []event `json:"events"`
			NextCursor string  `json:"next_cursor"`
		}
		path := fmt.Sprintf("/api/v1/events?limit=100&since=%d", since)
		if err := r.w.api.do(ctx, http.MethodGet, path, r.token, nil, &page); err != nil {
			return out, err
		}
		for _, e := range page.Events {
			if e.Seq > caughtUp { // never reached the socket: deliver it now
				r.onEvent(e, time.Time{})
				caughtUp = e.Seq
			}
			if e.Kind != "ride.matched" {
				continue
			}
			var d struct {
				RequestID string `json:"ride_request_id"`
				TripID    string `json:"trip_id"`
			}
			if err := json.Unmarshal(e.Data, &d); err != nil {
				return out, fmt.Errorf("event %d: %w", e.Seq, err)
			}
			out.Stored = append(out.Stored, MatchedEvent{Seq: e.Seq, RequestID: d.RequestID, TripID: d.TripID})
		}
		if page.NextCursor == "" || len(page.Events) == 0 {
			break
		}
		since = page.Events[len(page.Events)-1].Seq
	}
	r.mu.Lock()
	for seq, rec := range r.matched {
		out.Received[seq] = rec.Receipts
	}
	r.mu.Unlock()
	return out, nil
}
