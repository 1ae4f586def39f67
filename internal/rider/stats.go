package rider

import (
	"context"
	"fmt"
	"time"
)

// Stats is the operator's live view of ride requests.
type Stats struct {
	// WaitingRequests and WaitingRiders count the requests waiting now and
	// the people in them (party sizes added up).
	WaitingRequests int `json:"waiting_requests"`
	WaitingRiders   int `json:"waiting_riders"`
	// WaitingByStation lists the stations with waiting requests.
	WaitingByStation []StationWaiting `json:"waiting_by_station"`
	// MatchedLastHour counts requests matched in the last hour, and
	// MedianWaitSeconds is their median time from request to match (null
	// when there were none).
	MatchedLastHour   int      `json:"matched_last_hour"`
	MedianWaitSeconds *float64 `json:"median_wait_seconds"`
	// ExpiredToday counts requests that expired since midnight UTC.
	ExpiredToday int       `json:"expired_today"`
	At           time.Time `json:"at"`
}

// StationWaiting is what waits at one station.
type StationWaiting struct {
	StationID string `json:"station_id"`
	Requests  int    `json:"requests"`
	Riders    int    `json:"riders"`
}

// Stats returns the counters of ride requests across all riders, for
// operators (the caller checks the role).
func (s *Service) Stats(ctx context.Context) (Stats, error) {
	now := s.now().UTC()
	out := Stats{At: now, WaitingByStation: []StationWaiting{}}
	rows, err := s.q.WaitingByStation(ctx)
	if err != nil {
		return Stats{}, fmt.Errorf("count waiting requests: %w", err)
	}
	for _, r := range rows {
		out.WaitingByStation = append(out.WaitingByStation, StationWaiting{StationID: r.StationID, Requests: int(r.Requests), Riders: int(r.Riders)})
		out.WaitingRequests += int(r.Requests)
		out.WaitingRiders += int(r.Riders)
	}
	hourAgo := now.Add(-time.Hour)
	m, err := s.q.MatchStats(ctx, &hourAgo)
	if err != nil {
		return Stats{}, fmt.Errorf("count matches: %w", err)
	}
	out.MatchedLastHour = int(m.Matched)
	if m.Matched > 0 {
		out.MedianWaitSeconds = &m.MedianWaitSeconds
	}
	expired, err := s.q.CountExpiredSince(ctx, now.Truncate(24*time.Hour))
	if err != nil {
		return Stats{}, fmt.Errorf("count expired requests: %w", err)
	}
	out.ExpiredToday = int(expired)
	return out, nil
}
