package matching

import (
	"context"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/lastmile/lastmile/internal/location"
	"github.com/lastmile/lastmile/internal/rider"
)

// demand is this replica's view of where riders wait: for each station,
// destination area and party size with a waiting request, the earliest
// arrival time there. An approach that no rider waiting there could take
// (nobody waits, or everyone arrives later than the driver's ETA plus
// Config.Grace, the rule rider.LockWaiting applies) is parked instead of
// matched, and costs no Postgres round trip; most approaches are of this
// kind. The approach's free seats count too: where no eligible party
// fits in them, it is parked as well. Those seats are the location
// service's copy of the route, at most its refresh period old and so
// possibly lower than the truth just after seats came back; that refresh
// offers the approach again at once when it finds more seats. An approach
// that goes on is judged again on the free seats as just read from
// Postgres (fits): where no waiting party fits in them, no transaction is
// opened.
//
// The view may say "maybe" wrongly (a request matched or cancelled since
// the last read), never "nobody" wrongly for longer than one refresh:
//   - it answers "maybe" everywhere until its first read, and again when
//     its last read began more than staleAfter (60 refresh periods) ago,
//     should reads keep failing. Not sooner: a read that waits behind busy
//     connections is late, not wrong, and answering "maybe" then would
//     send every approach to a transaction just when the pool is busiest;
//     the parked approaches are offered again by the read when it lands;
//   - a request created on this replica is added at once (RequestCreated),
//     and kept across a read that began before it committed;
//   - a request created on another replica, or handed back to waiting, is
//     in the next read (every Config.DemandEvery); the approaches parked
//     there in the meantime are offered again then, so they are matched
//     within one refresh of the request, as if it had been there all along.
type demand struct {
	staleAfter time.Duration
	maxParked  time.Duration // a parked approach older than this is dropped
	grace      time.Duration // Config.Grace

	mu      sync.Mutex
	readAt  time.Time // when the read behind waiting began; zero: never read
	waiting map[demandKey]arrivals
	added   map[demandKey]localRequest
	parked  map[uuid.UUID]queued // the newest parked approach of each driver
}

type demandKey struct{ station, area string }

// arrivals holds, for each party size (index size-1), the earliest arrival
// of the requests of that size; the zero time: none.
type arrivals [rider.MaxPartySize]time.Time

// note records a request of party size arriving at arrival. A size out of
// range counts as the nearest in range: the view may say "maybe" wrongly
// for it, never "nobody".
func (a *arrivals) note(size int, arrival time.Time) {
	i := min(max(size, 1), rider.MaxPartySize) - 1
	if a[i].IsZero() || arrival.Before(a[i]) {
		a[i] = arrival
	}
}

// any says whether a party of at most seats people (any size when seats
// is 0 or less: not known) arrives no later than latest.
func (a *arrivals) any(seats int, latest time.Time) bool {
	if seats <= 0 || seats > rider.MaxPartySize {
		seats = rider.MaxPartySize
	}
	for _, t := range a[:seats] {
		if !t.IsZero() && !t.After(latest) {
			return true
		}
	}
	return false
}

// localRequest is, per party size, the earliest arrival of the requests
// created here at a station and area since the last read, and when the
// latest was added.
type localRequest struct {
	arrival arrivals
	at      time.Time
}

func newDemand(every, maxParked, grace time.Duration) *demand {
	return &demand{
		staleAfter: 60 * every, maxParked: maxParked, grace: grace,
		waiting: map[demandKey]arrivals{}, added: map[demandKey]localRequest{}, parked: map[uuid.UUID]queued{},
	}
}

// maybeLocked says whether a rider waiting may take q with seats free
// (0: not known); d.mu is held.
func (d *demand) maybeLocked(q queued, seats int, now time.Time) bool {
	if d.readAt.IsZero() || now.Sub(d.readAt) > d.staleAfter || q.ETA.IsZero() {
		return true
	}
	latest := q.ETA.Add(d.grace)
	k := demandKey{q.StationID, q.DestinationAreaID}
	if w, ok := d.waiting[k]; ok && w.any(seats, latest) {
		return true
	}
	l, ok := d.added[k]
	return ok && l.arrival.any(seats, latest)
}

// park keeps q and returns true when no rider waiting could take it (by
// destination, arrival and q's free seats); else it returns false (and
// forgets an older parked approach of the same driver, since q replaces
// it). An approach that does not name the driver's destination (a
// positions row from before the column) is never parked.
func (d *demand) park(q queued, now time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if q.DestinationAreaID == "" || d.maybeLocked(q, q.SeatsFree, now) {
		delete(d.parked, q.DriverID)
		return false
	}
	d.parked[q.DriverID] = q
	return true
}

// fits says whether a party waiting may fit in the seats free of a route
// to area that a approaches, as the route was just read. The free seats
// come from Postgres, not from a cache, so the answer is as right as the
// view itself: a request that fits is never missed.
func (d *demand) fits(a location.Approach, area string, seats int, now time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	a.DestinationAreaID = area
	return d.maybeLocked(queued{Approach: a}, max(seats, 1), now)
}

// add records a request created on this replica at now, and returns the
// approaches parked that it may take.
func (d *demand) add(r rider.Request, now time.Time) []queued {
	d.mu.Lock()
	defer d.mu.Unlock()
	k := demandKey{r.StationID, r.DestinationAreaID}
	l := d.added[k]
	l.arrival.note(r.PartySize, r.ArrivalTime)
	l.at = now
	d.added[k] = l
	return d.unparkLocked(now)
}

// install replaces the view with a read that began at readAt, keeping the
// local requests added since, and returns the parked approaches a rider
// waiting may now take.
func (d *demand) install(rows []rider.Demand, readAt time.Time) []queued {
	d.mu.Lock()
	defer d.mu.Unlock()
	waiting := make(map[demandKey]arrivals, len(rows))
	for _, r := range rows {
		k := demandKey{r.StationID, r.DestinationAreaID}
		w := waiting[k]
		w.note(r.PartySize, r.EarliestArrival)
		waiting[k] = w
	}
	for k, l := range d.added {
		if l.at.Before(readAt) { // all committed before the read began: in it, or gone since
			delete(d.added, k)
		}
	}
	d.waiting, d.readAt = waiting, readAt
	return d.unparkLocked(readAt)
}

// unparkLocked removes and returns the parked approaches the view now says
// "maybe" to, and drops those too old to match.
func (d *demand) unparkLocked(now time.Time) []queued {
	var out []queued
	for id, q := range d.parked {
		switch {
		case now.Sub(q.At) > d.maxParked:
			delete(d.parked, id)
		case d.maybeLocked(q, q.SeatsFree, now):
			delete(d.parked, id)
			out = append(out, q)
		}
	}
	return out
}

// runDemand re-reads where riders wait every cfg.DemandEvery until ctx is
// cancelled, and offers again the approaches parked where riders now wait.
func (s *Service) runDemand(ctx context.Context) {
	t := time.NewTicker(s.cfg.DemandEvery)
	defer t.Stop()
	for {
		s.refreshDemand(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// refreshDemand reads where riders wait once. On an error the view keeps
// its last read, and turns to "maybe" everywhere once that is stale.
func (s *Service) refreshDemand(ctx context.Context) {
	start := s.now()
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	rows, err := s.requests.WaitingDemand(rctx)
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			s.logger.Warn("read where riders wait", "err", err)
		}
		return
	}
	for _, q := range s.demand.install(rows, start) {
		s.enqueue(q)
	}
}
