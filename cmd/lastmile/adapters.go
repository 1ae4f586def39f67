package main

import (
	"context"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/lastmile/lastmile/internal/driver"
	"github.com/lastmile/lastmile/internal/location"
	"github.com/lastmile/lastmile/internal/notify"
	"github.com/lastmile/lastmile/internal/station"
	"github.com/lastmile/lastmile/internal/trip"
	"github.com/lastmile/lastmile/internal/user"
)

// events lets domains append notify events without knowing notify's types.
type events struct{ n *notify.Service }

func (e events) Append(ctx context.Context, tx pgx.Tx, userID uuid.UUID, kind string, data any) error {
	_, err := e.n.Append(ctx, tx, userID, kind, data)
	return err
}

// names gives matching the display name of a driver.
type names struct{ u *user.Service }

func (n names) Name(ctx context.Context, id uuid.UUID) (string, error) {
	u, err := n.u.Get(ctx, id)
	return u.Name, err
}

// routeSource gives location the active routes of its drivers: the route
// from driver, the stations' fences from station, the riders from trip.
type routeSource struct {
	drivers  *driver.Service
	stations *station.Service
	trips    *trip.Service
}

func (rs routeSource) Routes(ctx context.Context, driverIDs []uuid.UUID) (map[uuid.UUID]location.Route, error) {
	routes, err := rs.drivers.ActiveOf(ctx, driverIDs)
	if err != nil || len(routes) == 0 {
		return nil, err
	}
	var ids []string
	for _, r := range routes {
		ids = append(ids, r.NextStations()...)
	}
	fences, err := rs.stations.Fences(ctx, ids)
	if err != nil {
		return nil, err
	}
	riders, err := rs.trips.LiveRiders(ctx, driverIDs)
	if err != nil {
		return nil, err
	}
	out := make(map[uuid.UUID]location.Route, len(routes))
	for _, r := range routes {
		lr := location.Route{ID: r.ID, DestinationAreaID: r.DestinationAreaID, SeatsFree: r.SeatsFree, Riders: riders[r.DriverID]}
		for _, id := range r.NextStations() {
			if f, ok := fences[id]; ok {
				lr.Ahead = append(lr.Ahead, location.Station{ID: id, Point: f.Center, RadiusM: f.RadiusM})
			}
		}
		out[r.DriverID] = lr
	}
	return out, nil
}

func (rs routeSource) MarkPassed(ctx context.Context, routeID uuid.UUID, stationID string, at time.Time) error {
	return rs.drivers.MarkPassedNow(ctx, routeID, stationID, at)
}
