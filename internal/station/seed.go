package station

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/lastmile/lastmile/internal/postgres"
)

// defaultCatalog is the catalog an empty database starts with: stations of
// the Electronic City / Outer Ring Road cluster in Bengaluru and named
// places near them.
//
//go:embed bengaluru-stations.json
var defaultCatalog []byte

// Seed fills an empty catalog with the default stations and areas, and does
// nothing when the catalog holds any station (so a catalog imported before
// the first start is left alone, and one an operator emptied is filled
// again at the next start). Replicas starting together are safe: the check
// and the inserts run in one transaction under a catalog-wide advisory
// lock, so exactly one of them seeds.
func (s *Service) Seed(ctx context.Context) error {
	n, err := s.seed(ctx, defaultCatalog)
	if err != nil {
		return fmt.Errorf("seed the station catalog: %w", err)
	}
	if n > 0 {
		s.logger.Info("station catalog was empty: seeded the default stations", "stations", n)
	}
	return nil
}

// seed inserts the stations of the JSON catalog data when the catalog is
// empty, and returns how many it inserted.
func (s *Service) seed(ctx context.Context, data []byte) (int, error) {
	var catalog struct {
		About    string         `json:"about"`
		Stations []StationInput `json:"stations"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&catalog); err != nil {
		return 0, fmt.Errorf("read catalog: %w", err)
	}
	stations := make([]Station, len(catalog.Stations))
	for i, in := range catalog.Stations {
		st, err := in.validate()
		if err != nil {
			return 0, fmt.Errorf("catalog station %d (%s): %w", i, in.ID, err)
		}
		stations[i] = st
	}
	return postgres.InTxValue(ctx, s.pool, func(tx pgx.Tx) (int, error) {
		q := s.q.WithTx(tx)
		if err := q.LockCatalog(ctx); err != nil {
			return 0, fmt.Errorf("lock catalog: %w", err)
		}
		full, err := q.AnyStation(ctx)
		if err != nil {
			return 0, fmt.Errorf("check for stations: %w", err)
		}
		if full {
			return 0, nil
		}
		for _, st := range stations {
			if err := insertStation(ctx, q, st); err != nil {
				return 0, err
			}
		}
		return len(stations), nil
	})
}
