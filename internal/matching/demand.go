package matching

import (
	"context"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/lastmile/lastmile/internal/rider"
)

// demand is this replica's view of where riders wait: the stations and
// destination areas with at least one waiting request. An approach where
// it says nobody waits is parked instead of matched, and costs no Postgres
// round trip; most approaches are of this kind.
//
// The view may say "maybe" wrongly (a request matched or cancelled since
// the last read), never "nobody" wrongly for longer than one refresh:
//   - it answers "maybe" everywhere until its first read, and again when
//     its last read began more than staleAfter ago (Postgres unreachable);
//   - a request created on this replica is added at once (RequestCreated),
//     and kept across a read that began before it committed;
//   - a request created on another replica, or handed back to waiting, is
//     in the next read (every Config.DemandEvery); the approaches parked
//     there in the meantime are offered again then, so they are matched
//     within one refresh of the request, as if it had been there all along.
type demand struct {
	staleAfter time.Duration
	maxParked  time.Duration // a parked approach older than this is dropped

	mu      sync.Mutex
	readAt  time.Time // when the read behind waiting began; zero: never read
	waiting map[rider.Demand]struct{}
	added   map[rider.Demand]time.Time // created here, with when; kept across reads begun before
	parked  map[uuid.UUID]queued       // the newest parked approach of each driver
}

func newDemand(every, maxParked time.Duration) *demand {
	return &demand{
		staleAfter: 4 * every, maxParked: maxParked,
		waiting: map[rider.Demand]struct{}{}, added: map[rider.Demand]time.Time{}, parked: map[uuid.UUID]queued{},
	}
}

func demandOf(q queued) rider.Demand {
	return rider.Demand{StationID: q.StationID, DestinationAreaID: q.DestinationAreaID}
}

// maybeLocked says whether a rider may wait for d; d.mu is held.
func (d *demand) maybeLocked(k rider.Demand, now time.Time) bool {
	if d.readAt.IsZero() || now.Sub(d.readAt) > d.staleAfter {
		return true
	}
	if _, ok := d.waiting[k]; ok {
		return true
	}
	_, ok := d.added[k]
	return ok
}

// park keeps q and returns true when nobody waits where it approaches;
// else it returns false (and forgets an older parked approach of the same
// driver, since q replaces it). An approach that does not name the
// driver's destination (read back from the positions table) is never
// parked.
func (d *demand) park(q queued, now time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if q.DestinationAreaID == "" || d.maybeLocked(demandOf(q), now) {
		delete(d.parked, q.DriverID)
		return false
	}
	d.parked[q.DriverID] = q
	return true
}

// add records a request created on this replica at now, and returns the
// approaches parked where it waits.
func (d *demand) add(k rider.Demand, now time.Time) []queued {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.added[k] = now
	return d.unparkLocked(now)
}

// install replaces the view with a read that began at readAt, keeping the
// local requests added since, and returns the parked approaches where
// riders now wait.
func (d *demand) install(rows []rider.Demand, readAt time.Time) []queued {
	d.mu.Lock()
	defer d.mu.Unlock()
	waiting := make(map[rider.Demand]struct{}, len(rows))
	for _, r := range rows {
		waiting[r] = struct{}{}
	}
	for k, at := range d.added {
		if at.Before(readAt) { // committed before the read began: in it, or gone since
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
		case d.maybeLocked(demandOf(q), now):
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
