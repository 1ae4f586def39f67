package location

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lastmile/lastmile/internal/location/internal/locationdb"
)

// Positions reads the latest positions that every replica's Service
// writes: who is approaching a station, where a driver is, who is online.
// It is apart from Service because it needs nothing but the database, so
// the domains that read positions (matching, trip) can be built before
// Service, which needs them (matching is its sink).
type Positions struct {
	q            *locationdb.Queries
	offlineAfter time.Duration
	now          func() time.Time
}

// NewPositions returns the reader of stored positions; a fix older than
// offlineAfter (default 60 s, as Config.OfflineAfter) is offline.
func NewPositions(pool *pgxpool.Pool, offlineAfter time.Duration) *Positions {
	if offlineAfter <= 0 {
		offlineAfter = time.Minute
	}
	return &Positions{q: locationdb.New(pool), offlineAfter: offlineAfter, now: time.Now}
}

// Approaching returns the drivers whose latest fresh fix, as written by any
// replica, puts them in the trigger radius of stationID on a route to
// areaID, with the route's free seats as that replica last read them. An
// approach whose destination was not yet written (a row older than the
// column) comes with DestinationAreaID empty and SeatsFree 0 (not known).
func (s *Positions) Approaching(ctx context.Context, stationID, areaID string) ([]Approach, error) {
	rows, err := s.q.ApproachingDrivers(ctx, locationdb.ApproachingDriversParams{StationID: &stationID, AreaID: &areaID,
		FreshAfter: s.now().Add(-s.offlineAfter)})
	if err != nil {
		return nil, fmt.Errorf("approaching drivers at %s: %w", stationID, err)
	}
	out := make([]Approach, 0, len(rows))
	for _, r := range rows {
		a := Approach{DriverID: r.DriverID, StationID: stationID, At: r.At}
		if r.RouteID != nil {
			a.RouteID = *r.RouteID
		}
		if r.Eta != nil {
			a.ETA = *r.Eta
		}
		if r.DestinationAreaID != nil {
			a.DestinationAreaID = *r.DestinationAreaID
		}
		if r.SeatsFree != nil {
			a.SeatsFree = int(*r.SeatsFree)
		}
		out = append(out, a)
	}
	return out, nil
}

// Position is a driver's latest position as stored by the replica that
// holds its socket (at most a second or so old).
type Position struct {
	DriverID             uuid.UUID  `json:"driver_id"`
	Lat                  float64    `json:"lat"`
	Lng                  float64    `json:"lng"`
	At                   time.Time  `json:"at"`
	SpeedMps             *float64   `json:"speed_mps,omitempty"`
	Heading              *float64   `json:"heading,omitempty"`
	RouteID              *uuid.UUID `json:"route_id,omitempty"`
	ApproachingStationID *string    `json:"approaching_station_id,omitempty"`
	ETA                  *time.Time `json:"eta,omitempty"`
	// Online is false when the fix is older than the offline window.
	Online bool `json:"online"`
}

func (s *Positions) toPosition(p locationdb.DriverPosition) Position {
	out := Position{DriverID: p.DriverID, Lat: p.Lat, Lng: p.Lng, At: p.At.UTC(), SpeedMps: p.SpeedMps, Heading: p.Heading,
		RouteID: p.RouteID, ApproachingStationID: p.ApproachingStationID, ETA: p.Eta, Online: s.now().Sub(p.At) <= s.offlineAfter}
	if out.ETA != nil {
		eta := out.ETA.UTC()
		out.ETA = &eta
	}
	return out
}

// Latest returns a driver's latest stored position, and false when none
// is known.
func (s *Positions) Latest(ctx context.Context, driverID uuid.UUID) (Position, bool, error) {
	row, err := s.q.GetPosition(ctx, driverID)
	if errors.Is(err, pgx.ErrNoRows) {
		return Position{}, false, nil
	}
	if err != nil {
		return Position{}, false, fmt.Errorf("position of driver %s: %w", driverID, err)
	}
	return s.toPosition(row), true, nil
}

// Online returns the latest positions of online drivers (fix within the
// offline window), in driver id order after after, up to limit.
func (s *Positions) Online(ctx context.Context, after uuid.UUID, limit int) ([]Position, error) {
	rows, err := s.q.LatestPositions(ctx, locationdb.LatestPositionsParams{FreshAfter: s.now().Add(-s.offlineAfter), After: after, Lim: int32(limit)})
	if err != nil {
		return nil, fmt.Errorf("online drivers: %w", err)
	}
	out := make([]Position, len(rows))
	for i, r := range rows {
		out[i] = s.toPosition(r)
	}
	return out, nil
}
