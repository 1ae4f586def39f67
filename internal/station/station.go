package station

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lastmile/lastmile/internal/fault"
	"github.com/lastmile/lastmile/internal/geo"
	"github.com/lastmile/lastmile/internal/idempotency"
	"github.com/lastmile/lastmile/internal/postgres"
	"github.com/lastmile/lastmile/internal/station/internal/stationdb"
)

// Errors returned by the Service.
var (
	ErrNotFound     = fault.New(fault.NotFound, "station not found")
	ErrAreaNotFound = fault.New(fault.NotFound, "area not found")
	ErrExists       = fault.New(fault.Conflict, "a station with this id already exists")
	ErrAreaExists   = fault.New(fault.Conflict, "an area with this id already exists (area ids are unique across all stations)")
	ErrInUse        = fault.New(fault.Conflict, "the station or one of its areas is still named by routes, ride requests or trips; it cannot be deleted")
	ErrAreaInUse    = fault.New(fault.Conflict, "the area is still named by routes, ride requests or trips; it cannot be deleted")
	ErrTooManyAreas = fault.New(fault.Conflict, fmt.Sprintf("the station already has %d areas, the most it may have; delete one first", MaxAreas))
)

// DefaultRadiusM is the trigger radius of a station that does not set one.
const DefaultRadiusM = 800

// Station is a metro station as clients see it.
type Station struct {
	ID      string   `json:"id"`
	Name    string   `json:"name"`
	Lines   []string `json:"lines"`
	Lat     float64  `json:"lat"`
	Lng     float64  `json:"lng"`
	RadiusM int      `json:"radius_m"`
	Areas   []Area   `json:"areas"`
}

// Area is a named destination near a station.
type Area struct {
	ID   string  `json:"id"`
	Name string  `json:"name"`
	Lat  float64 `json:"lat"`
	Lng  float64 `json:"lng"`
}

// Fence is what proximity detection needs of a station: where it is and
// how close a driver must come to be approaching it.
type Fence struct {
	StationID string
	Center    geo.Point
	RadiusM   float64
}

// Service owns the station catalog. Every read goes to Postgres, so all
// replicas see a write as soon as it commits.
type Service struct {
	pool   *pgxpool.Pool
	q      *stationdb.Queries
	logger *slog.Logger
	// limits bound what ImportGTFS accepts; tests lower them.
	limits feedLimits
}

// New returns the station service on pool.
func New(pool *pgxpool.Pool, logger *slog.Logger) *Service {
	return &Service{pool: pool, q: stationdb.New(pool), logger: logger, limits: defaultFeedLimits}
}

// Get returns the station id with its areas, or ErrNotFound.
func (s *Service) Get(ctx context.Context, id string) (Station, error) {
	row, err := s.q.GetStation(ctx, id)
	if errors.Is(err, pgx.ErrNoRows) {
		return Station{}, ErrNotFound
	}
	if err != nil {
		return Station{}, fmt.Errorf("get station %s: %w", id, err)
	}
	list, err := withAreas(ctx, s.q, []stationdb.Station{row})
	if err != nil {
		return Station{}, err
	}
	return list[0], nil
}

// MaxPage is the largest page List returns.
const MaxPage = 100

// List returns up to limit stations (1 to MaxPage) with ids after after, in
// id order, and the id to pass as after for the next page, or "" when there
// is no more.
func (s *Service) List(ctx context.Context, after string, limit int) ([]Station, string, error) {
	limit = min(max(limit, 1), MaxPage)
	rows, err := s.q.ListStations(ctx, stationdb.ListStationsParams{After: after, Lim: int32(limit + 1)})
	if err != nil {
		return nil, "", fmt.Errorf("list stations: %w", err)
	}
	next := ""
	if len(rows) > limit {
		rows = rows[:limit]
		next = rows[limit-1].ID
	}
	list, err := withAreas(ctx, s.q, rows)
	return list, next, err
}

// Fences returns the fence of each of ids that exists, keyed by station id,
// in one indexed query. Proximity detection loads the fences of a route's
// stations once, when it learns the route, and keeps them: the GPS path
// never waits on this.
func (s *Service) Fences(ctx context.Context, ids []string) (map[string]Fence, error) {
	rows, err := s.q.Fences(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("load station fences: %w", err)
	}
	out := make(map[string]Fence, len(rows))
	for _, r := range rows {
		out[r.ID] = Fence{StationID: r.ID, Center: geo.Point{Lat: r.Lat, Lng: r.Lng}, RadiusM: float64(r.RadiusM)}
	}
	return out, nil
}

// Create adds a station and its areas, in one transaction. It returns a
// *fault.Validation naming every invalid field, ErrExists when the id is
// taken, or ErrAreaExists when an area id is.
func (s *Service) Create(ctx context.Context, in StationInput) (Station, error) {
	st, err := in.validate()
	if err != nil {
		return Station{}, err
	}
	return postgres.InTxValue(ctx, s.pool, func(tx pgx.Tx) (Station, error) {
		q := s.q.WithTx(tx)
		if err := insertStation(ctx, q, st); err != nil {
			return Station{}, err
		}
		// Read it back, so the answer is exactly what Get will say.
		row, err := q.GetStation(ctx, st.ID)
		if err != nil {
			return Station{}, fmt.Errorf("read station %s back: %w", st.ID, err)
		}
		list, err := withAreas(ctx, q, []stationdb.Station{row})
		if err != nil {
			return Station{}, err
		}
		return list[0], idempotency.StoreCreated(ctx, tx, list[0])
	})
}

// insertStation inserts st and its areas with q, mapping key violations to
// ErrExists and ErrAreaExists.
func insertStation(ctx context.Context, q *stationdb.Queries, st Station) error {
	_, err := q.CreateStation(ctx, stationdb.CreateStationParams{
		ID: st.ID, Name: st.Name, Lines: st.Lines, Lat: st.Lat, Lng: st.Lng, RadiusM: int32(st.RadiusM),
	})
	if code, _, ok := postgres.Violation(err); ok && code == "23505" {
		return ErrExists
	}
	if err != nil {
		return fmt.Errorf("create station %s: %w", st.ID, err)
	}
	for _, a := range st.Areas {
		if err := insertArea(ctx, q, st.ID, a); err != nil {
			return err
		}
	}
	return nil
}

func insertArea(ctx context.Context, q *stationdb.Queries, stationID string, a Area) error {
	_, err := q.CreateArea(ctx, stationdb.CreateAreaParams{ID: a.ID, StationID: stationID, Name: a.Name, Lat: a.Lat, Lng: a.Lng})
	switch code, _, _ := postgres.Violation(err); code {
	case "":
	case "23505":
		return ErrAreaExists
	case "23503": // the station was deleted meanwhile
		return ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("create area %s: %w", a.ID, err)
	}
	return nil
}

// Update changes the fields of station id that in sets. It returns a
// *fault.Validation naming every invalid field, or ErrNotFound.
func (s *Service) Update(ctx context.Context, id string, in StationPatch) (Station, error) {
	if err := in.validate(); err != nil {
		return Station{}, err
	}
	p := stationdb.UpdateStationParams{ID: id, Name: in.Name, Lat: in.Lat, Lng: in.Lng}
	if in.Lines != nil {
		p.Lines = *in.Lines
	}
	if in.RadiusM != nil {
		r := int32(*in.RadiusM)
		p.RadiusM = &r
	}
	_, err := s.q.UpdateStation(ctx, p)
	if errors.Is(err, pgx.ErrNoRows) {
		return Station{}, ErrNotFound
	}
	if err != nil {
		return Station{}, fmt.Errorf("update station %s: %w", id, err)
	}
	return s.Get(ctx, id)
}

// Delete removes station id and its areas. It returns ErrNotFound, or
// ErrInUse when another domain still refers to the station or one of its
// areas (their foreign keys restrict the delete).
func (s *Service) Delete(ctx context.Context, id string) error {
	n, err := s.q.DeleteStation(ctx, id)
	if code, _, _ := postgres.Violation(err); code == "23503" {
		return ErrInUse
	}
	if err != nil {
		return fmt.Errorf("delete station %s: %w", id, err)
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// CreateArea adds an area to station stationID. It returns a
// *fault.Validation naming every invalid field, ErrNotFound for an unknown
// station, ErrAreaExists when the area id is taken by any station, or
// ErrTooManyAreas when the station has MaxAreas already.
func (s *Service) CreateArea(ctx context.Context, stationID string, in AreaInput) (Area, error) {
	var v fault.Validation
	a := in.validate(&v, "")
	if err := v.Err(); err != nil {
		return Area{}, err
	}
	// The station row is locked so that areas added at once, one request
	// each, cannot together pass MaxAreas.
	err := postgres.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		q := s.q.WithTx(tx)
		if _, err := q.LockStation(ctx, stationID); errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		} else if err != nil {
			return fmt.Errorf("lock station %s: %w", stationID, err)
		}
		n, err := q.CountAreas(ctx, stationID)
		if err != nil {
			return fmt.Errorf("count areas of station %s: %w", stationID, err)
		}
		if n >= MaxAreas {
			return ErrTooManyAreas
		}
		if err := insertArea(ctx, q, stationID, a); err != nil {
			return err
		}
		return idempotency.StoreCreated(ctx, tx, a)
	})
	if err != nil {
		return Area{}, err
	}
	return a, nil
}

// UpdateArea changes the fields of area areaID of station stationID that in
// sets. It returns a *fault.Validation naming every invalid field, or
// ErrAreaNotFound when the station has no such area.
func (s *Service) UpdateArea(ctx context.Context, stationID, areaID string, in AreaPatch) (Area, error) {
	if err := in.validate(); err != nil {
		return Area{}, err
	}
	row, err := s.q.UpdateArea(ctx, stationdb.UpdateAreaParams{ID: areaID, StationID: stationID, Name: in.Name, Lat: in.Lat, Lng: in.Lng})
	if errors.Is(err, pgx.ErrNoRows) {
		return Area{}, ErrAreaNotFound
	}
	if err != nil {
		return Area{}, fmt.Errorf("update area %s: %w", areaID, err)
	}
	return toArea(row), nil
}

// DeleteArea removes area areaID of station stationID. It returns
// ErrAreaNotFound, or ErrAreaInUse when another domain still refers to it.
func (s *Service) DeleteArea(ctx context.Context, stationID, areaID string) error {
	n, err := s.q.DeleteArea(ctx, stationdb.DeleteAreaParams{ID: areaID, StationID: stationID})
	if code, _, _ := postgres.Violation(err); code == "23503" {
		return ErrAreaInUse
	}
	if err != nil {
		return fmt.Errorf("delete area %s: %w", areaID, err)
	}
	if n == 0 {
		return ErrAreaNotFound
	}
	return nil
}

// withAreas turns rows into stations, in the same order, with their areas
// loaded in one query.
func withAreas(ctx context.Context, q *stationdb.Queries, rows []stationdb.Station) ([]Station, error) {
	out := make([]Station, len(rows))
	if len(rows) == 0 {
		return out, nil
	}
	ids := make([]string, len(rows))
	at := make(map[string]int, len(rows))
	for i, r := range rows {
		out[i] = toStation(r)
		ids[i] = r.ID
		at[r.ID] = i
	}
	areas, err := q.AreasOf(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("load areas: %w", err)
	}
	for _, a := range areas {
		st := &out[at[a.StationID]]
		st.Areas = append(st.Areas, toArea(a))
	}
	return out, nil
}

func toStation(r stationdb.Station) Station {
	lines := r.Lines
	if lines == nil {
		lines = []string{}
	}
	return Station{ID: r.ID, Name: r.Name, Lines: lines, Lat: r.Lat, Lng: r.Lng, RadiusM: int(r.RadiusM), Areas: []Area{}}
}

func toArea(r stationdb.Area) Area {
	return Area{ID: r.ID, Name: r.Name, Lat: r.Lat, Lng: r.Lng}
}
