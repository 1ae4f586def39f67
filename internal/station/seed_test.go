package station

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
)

// defaultCounts is how many stations and areas the embedded catalog holds.
func defaultCounts(tb testing.TB) (stations, areas int) {
	tb.Helper()
	var c struct {
		Stations []struct {
			Areas []json.RawMessage `json:"areas"`
		} `json:"stations"`
	}
	if err := json.Unmarshal(defaultCatalog, &c); err != nil {
		tb.Fatal(err)
	}
	for _, s := range c.Stations {
		areas += len(s.Areas)
	}
	return len(c.Stations), areas
}

func countAreas(tb testing.TB, svc *Service) int {
	tb.Helper()
	var n int
	if err := svc.pool.QueryRow(context.Background(), "SELECT count(*) FROM areas").Scan(&n); err != nil {
		tb.Fatal(err)
	}
	return n
}

func TestSeedFillsAnEmptyCatalogOnce(t *testing.T) {
	svc := newService(t)
	ctx := context.Background()
	wantStations, wantAreas := defaultCounts(t)
	if wantStations < 5 || wantAreas < wantStations {
		t.Fatalf("the default catalog holds %d stations and %d areas: too few to be the real data", wantStations, wantAreas)
	}
	if err := svc.Seed(ctx); err != nil {
		t.Fatal(err)
	}
	if got := len(stationIDs(t, svc)); got != wantStations {
		t.Fatalf("after seeding: %d stations, want %d", got, wantStations)
	}
	if got := countAreas(t, svc); got != wantAreas {
		t.Fatalf("after seeding: %d areas, want %d", got, wantAreas)
	}
	ecity, err := svc.Get(ctx, "ecity")
	if err != nil {
		t.Fatal(err)
	}
	if ecity.Name != "Electronic City" || ecity.RadiusM != 800 || len(ecity.Areas) == 0 || ecity.Lines == nil {
		t.Fatalf("ecity = %+v", ecity)
	}
	if st, ok := areaStation(t, svc, "wipro-gate"); !ok || st != "ecity" {
		t.Fatalf("area wipro-gate belongs to %q (%v), want ecity", st, ok)
	}

	// An operator renames a station; seeding again changes and adds nothing.
	if _, err := svc.Update(ctx, "ecity", StationPatch{Name: ptr("E-City")}); err != nil {
		t.Fatal(err)
	}
	if err := svc.Seed(ctx); err != nil {
		t.Fatal(err)
	}
	if got := len(stationIDs(t, svc)); got != wantStations {
		t.Fatalf("after seeding twice: %d stations, want %d", got, wantStations)
	}
	if got := countAreas(t, svc); got != wantAreas {
		t.Fatalf("after seeding twice: %d areas, want %d", got, wantAreas)
	}
	if st, _ := svc.Get(ctx, "ecity"); st.Name != "E-City" {
		t.Fatalf("seeding again overwrote the operator's name: %q", st.Name)
	}
}

func TestSeedByReplicasStartingTogether(t *testing.T) {
	svc := newService(t)
	wantStations, _ := defaultCounts(t)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		// One Service per replica, sharing the database.
		replica := New(svc.pool, svc.logger)
		wg.Go(func() { errs[i] = replica.Seed(context.Background()) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("replica %d: Seed = %v", i, err)
		}
	}
	if got := len(stationIDs(t, svc)); got != wantStations {
		t.Fatalf("%d stations, want %d", got, wantStations)
	}
}

func TestSeedLeavesAnImportedCatalogAlone(t *testing.T) {
	svc := newService(t)
	mustCreate(t, svc, StationInput{ID: "only", Name: "Only", Lat: ptr(1.0), Lng: ptr(2.0)})
	if err := svc.Seed(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := stationIDs(t, svc); len(got) != 1 {
		t.Fatalf("stations = %v, want only the one there was", got)
	}
}
