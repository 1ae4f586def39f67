package station

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/lastmile/lastmile/internal/fault"
	"github.com/lastmile/lastmile/internal/httpx"
	"github.com/lastmile/lastmile/internal/identity"
	"github.com/lastmile/lastmile/internal/postgres/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// The tokens fakeAuth knows.
const (
	operatorToken = "operator-token"
	riderToken    = "rider-token"
	driverToken   = "driver-token"
)

// fakeAuth stands in for the user domain: fixed tokens, fixed roles.
type fakeAuth map[string]identity.Role

func (f fakeAuth) Authenticate(_ context.Context, token string) (identity.Principal, error) {
	role, ok := f[token]
	if !ok {
		return identity.Principal{}, fault.New(fault.Unauthorized, "unknown token")
	}
	return identity.Principal{UserID: uuid.New(), Role: role}, nil
}

func newService(tb testing.TB) *Service {
	tb.Helper()
	return New(pgtest.New(tb), slog.New(slog.DiscardHandler))
}

// areaStation reads which station areaID belongs to, straight from the
// table; ok is false when there is no such area.
func areaStation(tb testing.TB, svc *Service, areaID string) (station string, ok bool) {
	tb.Helper()
	err := svc.pool.QueryRow(context.Background(), `SELECT station_id FROM areas WHERE id = $1`, areaID).Scan(&station)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", false
	}
	if err != nil {
		tb.Fatal(err)
	}
	return station, true
}

type testEnv struct {
	svc *Service
	srv *httptest.Server
}

// newEnv serves the stations API of a fresh database the way cmd/lastmile
// mounts it.
func newEnv(tb testing.TB) *testEnv {
	tb.Helper()
	logger := slog.New(slog.DiscardHandler)
	svc := newService(tb)
	r := chi.NewRouter()
	r.Use(httpx.NewMetrics(prometheus.NewRegistry()).Observe(logger), httpx.LimitBody)
	auth := fakeAuth{operatorToken: identity.RoleOperator, riderToken: identity.RoleRider, driverToken: identity.RoleDriver}
	passThrough := func(next http.Handler) http.Handler { return next }
	NewHandler(svc).Routes(r, httpx.RequireAuth(auth), passThrough)
	srv := httptest.NewServer(r)
	tb.Cleanup(srv.Close)
	return &testEnv{svc: svc, srv: srv}
}

// call sends a request with a JSON body (a string is sent as is) and
// decodes the JSON answer into a map.
func (e *testEnv) call(tb testing.TB, method, path, token string, body any) (int, map[string]any) {
	tb.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		buf, err := json.Marshal(b)
		if err != nil {
			tb.Fatal(err)
		}
		rd = bytes.NewReader(buf)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		tb.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	var out map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			tb.Fatalf("%s %s: answer is not a JSON object: %q", method, path, raw)
		}
	}
	return resp.StatusCode, out
}

// fieldsOf returns the fields a problem's errors name.
func fieldsOf(problem map[string]any) []string {
	var fields []string
	errs, _ := problem["errors"].([]any)
	for _, e := range errs {
		fields = append(fields, e.(map[string]any)["field"].(string))
	}
	slices.Sort(fields)
	return fields
}

// invalidFields returns the fields err names when it is a *fault.Validation.
func invalidFields(err error) []string {
	var v *fault.Validation
	if !errors.As(err, &v) {
		return nil
	}
	var fields []string
	for _, f := range v.Fields {
		fields = append(fields, f.Field)
	}
	slices.Sort(fields)
	return fields
}

func ptr[T any](v T) *T { return &v }

// mustCreate adds a station or fails the test.
func mustCreate(tb testing.TB, svc *Service, in StationInput) Station {
	tb.Helper()
	st, err := svc.Create(context.Background(), in)
	if err != nil {
		tb.Fatalf("create station %s: %v", in.ID, err)
	}
	return st
}

// stationIDs lists the ids of every station, in order.
func stationIDs(tb testing.TB, svc *Service) []string {
	tb.Helper()
	var ids []string
	after := ""
	for {
		page, next, err := svc.List(context.Background(), after, MaxPage)
		if err != nil {
			tb.Fatal(err)
		}
		for _, st := range page {
			ids = append(ids, st.ID)
		}
		if next == "" {
			return ids
		}
		after = next
	}
}
