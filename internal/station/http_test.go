package station

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/lastmile/lastmile/internal/geo"
	"github.com/lastmile/lastmile/internal/httpx"
)

func TestReadsArePublic(t *testing.T) {
	e := newEnv(t)
	if err := e.svc.Seed(context.Background()); err != nil {
		t.Fatal(err)
	}
	wantStations, _ := defaultCounts(t)

	code, body := e.call(t, "GET", "/api/v1/stations", "", nil)
	list, _ := body["stations"].([]any)
	if code != 200 || len(list) != wantStations || body["next_cursor"] != nil {
		t.Fatalf("list = %d, %d stations, next_cursor %v; want 200, %d, none", code, len(list), body["next_cursor"], wantStations)
	}

	code, st := e.call(t, "GET", "/api/v1/stations/silkboard", "", nil)
	if code != 200 || st["name"] != "Central Silk Board" || st["radius_m"] != float64(800) {
		t.Fatalf("get = %d %v", code, st)
	}
	for _, key := range []string{"id", "name", "lines", "lat", "lng", "radius_m", "areas"} {
		if _, ok := st[key]; !ok {
			t.Errorf("a station lacks %q: %v", key, st)
		}
	}
	areas, _ := st["areas"].([]any)
	if len(areas) == 0 {
		t.Fatalf("silkboard has no areas: %v", st)
	}
	for _, key := range []string{"id", "name", "lat", "lng"} {
		if _, ok := areas[0].(map[string]any)[key]; !ok {
			t.Errorf("an area lacks %q: %v", key, areas[0])
		}
	}

	code, problem := e.call(t, "GET", "/api/v1/stations/atlantis", "", nil)
	if code != 404 || problem["status"] != float64(404) {
		t.Fatalf("unknown station = %d %v, want a 404 problem", code, problem)
	}

	// From the Silk Board junction: Silk Board is nearest, then BTM Layout.
	silkBoard := geo.Point{Lat: 12.9177, Lng: 77.6238}
	code, body = e.call(t, "GET", "/api/v1/stations/nearby?lat=12.9177&lng=77.6238&limit=3", "", nil)
	near, _ := body["stations"].([]any)
	if code != 200 || len(near) != 3 {
		t.Fatalf("nearby = %d %v, want 3 stations", code, body)
	}
	last := -1.0
	for i, n := range near {
		s := n.(map[string]any)
		want := geo.DistanceM(silkBoard, geo.Point{Lat: s["lat"].(float64), Lng: s["lng"].(float64)})
		d := s["distance_m"].(float64)
		if math.Abs(d-want) > 0.06 || d < last {
			t.Errorf("nearby[%d] = %s at %.1f m, want %.1f m and nearest first", i, s["id"], d, want)
		}
		last = d
	}
	if id := near[0].(map[string]any)["id"]; id != "silkboard" {
		t.Errorf("nearest to Silk Board is %v", id)
	}
}

func TestListPages(t *testing.T) {
	e := newEnv(t)
	for i := range 7 {
		mustCreate(t, e.svc, StationInput{ID: fmt.Sprintf("s%d", i), Name: "S", Lat: ptr(1.0), Lng: ptr(2.0)})
	}
	var seen []string
	path := "/api/v1/stations?limit=3"
	for pages := 1; ; pages++ {
		code, body := e.call(t, "GET", path, "", nil)
		if code != 200 {
			t.Fatalf("GET %s = %d %v", path, code, body)
		}
		for _, s := range body["stations"].([]any) {
			seen = append(seen, s.(map[string]any)["id"].(string))
		}
		next, _ := body["next_cursor"].(string)
		if next == "" {
			if pages != 3 {
				t.Errorf("%d pages of 3 for 7 stations, want 3", pages)
			}
			break
		}
		path = "/api/v1/stations?limit=3&cursor=" + url.QueryEscape(next)
	}
	if want := []string{"s0", "s1", "s2", "s3", "s4", "s5", "s6"}; !slices.Equal(seen, want) {
		t.Fatalf("paged through %v, want %v", seen, want)
	}
	for _, q := range []string{"limit=0", "limit=101", "limit=ten", "cursor=%2F%2F"} {
		t.Run(q, func(t *testing.T) {
			code, problem := e.call(t, "GET", "/api/v1/stations?"+q, "", nil)
			want := []string{"limit"}
			if q[0] == 'c' {
				want = []string{"cursor"}
			}
			if code != 422 || !slices.Equal(fieldsOf(problem), want) {
				t.Fatalf("= %d %v, want 422 naming %v", code, problem, want)
			}
		})
	}
}

func TestNearbyNamesEveryBadParameter(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		query string
		want  []string
	}{
		{"", []string{"lat", "lng"}},
		{"lat=12.9", []string{"lng"}},
		{"lng=77.6", []string{"lat"}},
		{"lat=north&lng=77.6", []string{"lat"}},
		{"lat=90.01&lng=77.6", []string{"lat"}},
		{"lat=NaN&lng=77.6", []string{"lat"}},
		{"lat=12.9&lng=-180.5", []string{"lng"}},
		{"lat=12.9&lng=Inf", []string{"lng"}},
		{"lat=12.9&lng=77.6&limit=0", []string{"limit"}},
		{"lat=12.9&lng=77.6&limit=101", []string{"limit"}},
		{"lat=12.9&lng=77.6&limit=2.5", []string{"limit"}},
		{"lat=-91&lng=181&limit=-1", []string{"lat", "limit", "lng"}},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			code, problem := e.call(t, "GET", "/api/v1/stations/nearby?"+tt.query, "", nil)
			if code != 422 || !slices.Equal(fieldsOf(problem), tt.want) {
				t.Fatalf("= %d %v, want 422 naming %v", code, problem, tt.want)
			}
		})
	}
	t.Run("good", func(t *testing.T) {
		code, body := e.call(t, "GET", "/api/v1/stations/nearby?lat=-90&lng=180&limit=100", "", nil)
		if code != 200 || body["stations"] == nil {
			t.Fatalf("= %d %v, want 200 and a (here empty) list", code, body)
		}
	})
}

func TestWritesAreForOperatorsOnly(t *testing.T) {
	e := newEnv(t)
	mustCreate(t, e.svc, StationInput{ID: "hsr", Name: "HSR Layout", Lat: ptr(12.9081), Lng: ptr(77.6476),
		Areas: []AreaInput{{ID: "agara", Name: "Agara", Lat: ptr(12.92), Lng: ptr(77.64)}}})
	writes := []struct {
		method, path string
		body         any
	}{
		{"POST", "/api/v1/stations", map[string]any{"id": "btm", "name": "BTM", "lat": 12.91, "lng": 77.61}},
		{"PATCH", "/api/v1/stations/hsr", map[string]any{"name": "Renamed"}},
		{"DELETE", "/api/v1/stations/hsr", nil},
		{"POST", "/api/v1/stations/hsr/areas", map[string]any{"id": "kudlu", "name": "Kudlu", "lat": 12.89, "lng": 77.65}},
		{"PATCH", "/api/v1/stations/hsr/areas/agara", map[string]any{"name": "Renamed"}},
		{"DELETE", "/api/v1/stations/hsr/areas/agara", nil},
	}
	callers := []struct {
		name, token string
		want        int
	}{
		{"no token", "", 401},
		{"unknown token", "forged", 401},
		{"rider", riderToken, 403},
		{"driver", driverToken, 403},
	}
	for _, w := range writes {
		for _, c := range callers {
			t.Run(w.method+" "+w.path+" as "+c.name, func(t *testing.T) {
				code, problem := e.call(t, w.method, w.path, c.token, w.body)
				if code != c.want || problem["status"] != float64(c.want) {
					t.Fatalf("= %d %v, want a %d problem", code, problem, c.want)
				}
			})
		}
	}
	st, err := e.svc.Get(context.Background(), "hsr")
	if err != nil || st.Name != "HSR Layout" || len(st.Areas) != 1 || st.Areas[0].Name != "Agara" {
		t.Fatalf("after refused writes: %+v, %v; want it unchanged", st, err)
	}
	if ids := stationIDs(t, e.svc); !slices.Equal(ids, []string{"hsr"}) {
		t.Fatalf("stations = %v, want only hsr", ids)
	}
}

func TestOperatorManagesStationsAndAreas(t *testing.T) {
	e := newEnv(t)
	op := operatorToken
	code, st := e.call(t, "POST", "/api/v1/stations", op, map[string]any{
		"id": "silk-board", "name": "Central Silk Board", "lines": []string{"Yellow", "Blue"},
		"lat": 12.9177, "lng": 77.6238, "radius_m": 900,
		"areas": []map[string]any{{"id": "madiwala", "name": "Madiwala", "lat": 12.9226, "lng": 77.6174}},
	})
	if code != 201 || st["id"] != "silk-board" || st["radius_m"] != float64(900) || len(st["areas"].([]any)) != 1 {
		t.Fatalf("create = %d %v", code, st)
	}
	if code, got := e.call(t, "GET", "/api/v1/stations/silk-board", "", nil); code != 200 || fmt.Sprint(got) != fmt.Sprint(st) {
		t.Fatalf("get after create = %d %v, want what create answered: %v", code, got, st)
	}
	code, _ = e.call(t, "POST", "/api/v1/stations", op, map[string]any{"id": "silk-board", "name": "Again", "lat": 1, "lng": 2})
	if code != 409 {
		t.Fatalf("same id again = %d, want 409", code)
	}
	// The radius defaults to 800; an area id taken by another station is a conflict.
	code, _ = e.call(t, "POST", "/api/v1/stations", op, map[string]any{"id": "btm", "name": "BTM Layout", "lat": 12.9135, "lng": 77.6101,
		"areas": []map[string]any{{"id": "madiwala", "name": "Madiwala", "lat": 12.92, "lng": 77.61}}})
	if code != 409 {
		t.Fatalf("taken area id = %d, want 409", code)
	}
	if code, _ := e.call(t, "GET", "/api/v1/stations/btm", "", nil); code != 404 {
		t.Fatalf("the station of a refused create exists: GET = %d", code)
	}
	code, btm := e.call(t, "POST", "/api/v1/stations", op, map[string]any{"id": "btm", "name": "BTM Layout", "lat": 12.9135, "lng": 77.6101})
	if code != 201 || btm["radius_m"] != float64(DefaultRadiusM) || len(btm["lines"].([]any)) != 0 || len(btm["areas"].([]any)) != 0 {
		t.Fatalf("create with defaults = %d %v", code, btm)
	}

	code, st = e.call(t, "PATCH", "/api/v1/stations/silk-board", op, map[string]any{"name": "Silk Board", "radius_m": 700, "lines": []string{}})
	if code != 200 || st["name"] != "Silk Board" || st["radius_m"] != float64(700) || len(st["lines"].([]any)) != 0 || st["lat"] != 12.9177 {
		t.Fatalf("patch = %d %v", code, st)
	}
	if code, _ := e.call(t, "PATCH", "/api/v1/stations/atlantis", op, map[string]any{"name": "X"}); code != 404 {
		t.Fatalf("patch unknown = %d, want 404", code)
	}

	code, area := e.call(t, "POST", "/api/v1/stations/silk-board/areas", op, map[string]any{"id": "hosur-road", "name": "Hosur Road", "lat": 12.915, "lng": 77.626})
	if code != 201 || area["id"] != "hosur-road" || area["lat"] != 12.915 {
		t.Fatalf("create area = %d %v", code, area)
	}
	if code, _ := e.call(t, "POST", "/api/v1/stations/btm/areas", op, map[string]any{"id": "hosur-road", "name": "Dup", "lat": 1, "lng": 2}); code != 409 {
		t.Fatalf("area id taken at another station = %d, want 409", code)
	}
	if code, _ := e.call(t, "POST", "/api/v1/stations/atlantis/areas", op, map[string]any{"id": "x", "name": "X", "lat": 1, "lng": 2}); code != 404 {
		t.Fatalf("area of an unknown station = %d, want 404", code)
	}
	if stationOf, ok := areaStation(t, e.svc, "hosur-road"); !ok || stationOf != "silk-board" {
		t.Fatalf("area hosur-road belongs to %q (%v), want silk-board", stationOf, ok)
	}

	code, area = e.call(t, "PATCH", "/api/v1/stations/silk-board/areas/hosur-road", op, map[string]any{"name": "Hosur Road Junction"})
	if code != 200 || area["name"] != "Hosur Road Junction" || area["lat"] != 12.915 {
		t.Fatalf("patch area = %d %v", code, area)
	}
	if code, _ := e.call(t, "PATCH", "/api/v1/stations/btm/areas/hosur-road", op, map[string]any{"name": "X"}); code != 404 {
		t.Fatalf("patch an area through the wrong station = %d, want 404", code)
	}
	if code, _ := e.call(t, "DELETE", "/api/v1/stations/btm/areas/hosur-road", op, nil); code != 404 {
		t.Fatalf("delete an area through the wrong station = %d, want 404", code)
	}
	if code, _ := e.call(t, "DELETE", "/api/v1/stations/silk-board/areas/hosur-road", op, nil); code != 204 {
		t.Fatalf("delete area = %d, want 204", code)
	}
	if code, _ := e.call(t, "DELETE", "/api/v1/stations/silk-board/areas/hosur-road", op, nil); code != 404 {
		t.Fatalf("delete area twice = %d, want 404", code)
	}

	if code, _ := e.call(t, "DELETE", "/api/v1/stations/silk-board", op, nil); code != 204 {
		t.Fatalf("delete = %d, want 204", code)
	}
	if code, _ := e.call(t, "GET", "/api/v1/stations/silk-board", "", nil); code != 404 {
		t.Fatalf("get after delete = %d, want 404", code)
	}
	if stationOf, ok := areaStation(t, e.svc, "madiwala"); ok {
		t.Fatalf("the deleted station's area madiwala is still there, at %q", stationOf)
	}
	if code, _ := e.call(t, "DELETE", "/api/v1/stations/silk-board", op, nil); code != 404 {
		t.Fatalf("delete twice = %d, want 404", code)
	}
}

func TestWritesNameEveryInvalidField(t *testing.T) {
	e := newEnv(t)
	mustCreate(t, e.svc, StationInput{ID: "hsr", Name: "HSR Layout", Lat: ptr(12.9081), Lng: ptr(77.6476),
		Areas: []AreaInput{{ID: "agara", Name: "Agara", Lat: ptr(12.92), Lng: ptr(77.64)}}})
	tests := []struct {
		name, method, path string
		body               any
		want               []string
	}{
		{"create: nothing", "POST", "/api/v1/stations", map[string]any{}, []string{"id", "lat", "lng", "name"}},
		{"create: bad id and radius", "POST", "/api/v1/stations", map[string]any{"id": "Silk Board", "name": "S", "lat": 1, "lng": 2, "radius_m": 1}, []string{"id", "radius_m"}},
		{"create: reserved id", "POST", "/api/v1/stations", map[string]any{"id": "nearby", "name": "S", "lat": 1, "lng": 2}, []string{"id"}},
		{"create: coordinates out of range", "POST", "/api/v1/stations", map[string]any{"id": "s", "name": "S", "lat": -90.5, "lng": 180.5}, []string{"lat", "lng"}},
		{"create: a coordinate as text", "POST", "/api/v1/stations", map[string]any{"id": "s", "name": "S", "lat": "12.9", "lng": 2}, []string{"lat"}},
		{"create: bad lines", "POST", "/api/v1/stations", map[string]any{"id": "s", "name": "S", "lat": 1, "lng": 2, "lines": []string{"Blue", ""}}, []string{"lines[1]"}},
		{"create: bad area", "POST", "/api/v1/stations", map[string]any{"id": "s", "name": "S", "lat": 1, "lng": 2,
			"areas": []map[string]any{{"id": "ok", "name": "Ok", "lat": 1, "lng": 2}, {"id": "", "name": "", "lat": 91}}},
			[]string{"areas[1].id", "areas[1].lat", "areas[1].lng", "areas[1].name"}},
		{"patch: blank name, bad radius", "PATCH", "/api/v1/stations/hsr", map[string]any{"name": " ", "radius_m": 9000}, []string{"name", "radius_m"}},
		{"patch: coordinates", "PATCH", "/api/v1/stations/hsr", map[string]any{"lat": 100, "lng": -200}, []string{"lat", "lng"}},
		{"create area: nothing", "POST", "/api/v1/stations/hsr/areas", map[string]any{}, []string{"id", "lat", "lng", "name"}},
		{"create area: bad id", "POST", "/api/v1/stations/hsr/areas", map[string]any{"id": "Gate 1", "name": "Gate", "lat": 1, "lng": 2}, []string{"id"}},
		{"patch area", "PATCH", "/api/v1/stations/hsr/areas/agara", map[string]any{"name": "", "lng": 181}, []string{"lng", "name"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, problem := e.call(t, tt.method, tt.path, operatorToken, tt.body)
			if code != 422 || !slices.Equal(fieldsOf(problem), tt.want) {
				t.Fatalf("= %d %v, want 422 naming %v", code, problem, tt.want)
			}
		})
	}
	malformed := []struct{ name, method, path, body string }{
		{"unknown field", "POST", "/api/v1/stations", `{"id":"s","name":"S","lat":1,"lng":2,"colour":"red"}`},
		{"id in a patch", "PATCH", "/api/v1/stations/hsr", `{"id":"other"}`},
		{"not JSON", "POST", "/api/v1/stations/hsr/areas", `{"id":`},
	}
	for _, tt := range malformed {
		t.Run(tt.name, func(t *testing.T) {
			if code, problem := e.call(t, tt.method, tt.path, operatorToken, tt.body); code != 400 {
				t.Fatalf("= %d %v, want 400", code, problem)
			}
		})
	}
	st, _ := e.svc.Get(context.Background(), "hsr")
	if ids := stationIDs(t, e.svc); !slices.Equal(ids, []string{"hsr"}) || st.Name != "HSR Layout" || len(st.Areas) != 1 || st.Areas[0].Name != "Agara" {
		t.Fatalf("bad input changed the catalog: %v %+v", ids, st)
	}
}

// TestDeleteWhatOthersReferToIsRefused stands in for routes and ride
// requests with a table of its own that refers to stations and areas the way
// theirs do.
func TestDeleteWhatOthersReferToIsRefused(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	mustCreate(t, e.svc, StationInput{ID: "hsr", Name: "HSR Layout", Lat: ptr(12.9081), Lng: ptr(77.6476),
		Areas: []AreaInput{{ID: "agara", Name: "Agara", Lat: ptr(12.92), Lng: ptr(77.64)}}})
	mustCreate(t, e.svc, StationInput{ID: "btm", Name: "BTM Layout", Lat: ptr(12.9135), Lng: ptr(77.6101),
		Areas: []AreaInput{{ID: "jayadeva", Name: "Jayadeva", Lat: ptr(12.918), Lng: ptr(77.600)}}})
	if _, err := e.svc.pool.Exec(ctx, `CREATE TABLE ref (
		station_id text REFERENCES stations (id) ON DELETE RESTRICT,
		area_id    text REFERENCES areas (id) ON DELETE RESTRICT)`); err != nil {
		t.Fatal(err)
	}
	// hsr itself is referred to; of btm, only an area is.
	if _, err := e.svc.pool.Exec(ctx, `INSERT INTO ref VALUES ('hsr', NULL), (NULL, 'jayadeva')`); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/api/v1/stations/hsr", "/api/v1/stations/btm", "/api/v1/stations/btm/areas/jayadeva"} {
		code, problem := e.call(t, "DELETE", path, operatorToken, nil)
		if code != 409 || problem["status"] != float64(409) {
			t.Errorf("DELETE %s = %d %v, want a 409 problem", path, code, problem)
		}
	}
	if ids := stationIDs(t, e.svc); !slices.Equal(ids, []string{"btm", "hsr"}) {
		t.Fatalf("stations = %v, want both kept", ids)
	}
	if btm, _ := e.svc.Get(ctx, "btm"); len(btm.Areas) != 1 {
		t.Fatalf("btm lost its referred-to area: %+v", btm)
	}
	// An area nobody refers to goes, though its station is referred to.
	if code, _ := e.call(t, "DELETE", "/api/v1/stations/hsr/areas/agara", operatorToken, nil); code != 204 {
		t.Fatalf("DELETE an unreferenced area = %d, want 204", code)
	}
	if _, err := e.svc.pool.Exec(ctx, `DELETE FROM ref`); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/api/v1/stations/hsr", "/api/v1/stations/btm"} {
		if code, _ := e.call(t, "DELETE", path, operatorToken, nil); code != 204 {
			t.Errorf("DELETE %s once nothing refers to it = %d, want 204", path, code)
		}
	}
}

func TestFences(t *testing.T) {
	svc := newService(t)
	mustCreate(t, svc, StationInput{ID: "hsr", Name: "HSR Layout", Lat: ptr(12.9081), Lng: ptr(77.6476), RadiusM: ptr(600)})
	fences, err := svc.Fences(context.Background(), []string{"hsr", "atlantis"})
	if err != nil {
		t.Fatal(err)
	}
	f, ok := fences["hsr"]
	if len(fences) != 1 || !ok || f.RadiusM != 600 || f.Center != (geo.Point{Lat: 12.9081, Lng: 77.6476}) {
		t.Fatalf("Fences = %+v, want only hsr with radius 600", fences)
	}
}

// TestOpenAPIMatchesRoutes fails when a route is served that the fragment
// lacks, the fragment describes one that is not served, or a $ref points
// nowhere once the fragment is merged into the base document.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	r := chi.NewRouter()
	passThrough := func(next http.Handler) http.Handler { return next }
	NewHandler(nil).Routes(r, passThrough, passThrough)
	var served []string
	err := chi.Walk(r, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		served = append(served, strings.ToLower(method)+" "+route)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	merged, err := httpx.OpenAPI(httpx.OpenAPIBase, OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(OpenAPI, &doc); err != nil {
		t.Fatal(err)
	}
	var documented []string
	for path, ops := range doc.Paths {
		for method := range ops {
			if method != "parameters" {
				documented = append(documented, method+" "+path)
			}
		}
	}
	slices.Sort(served)
	slices.Sort(documented)
	if !slices.Equal(served, documented) {
		t.Errorf("served %v\ndocumented %v", served, documented)
	}
	var all map[string]any
	if err := json.Unmarshal(merged, &all); err != nil {
		t.Fatal(err)
	}
	for _, ref := range regexp.MustCompile(`"\$ref":\s*"#/([^"]+)"`).FindAllStringSubmatch(string(OpenAPI), -1) {
		var node any = all
		for _, part := range strings.Split(ref[1], "/") {
			m, _ := node.(map[string]any)
			node = m[part]
		}
		if node == nil {
			t.Errorf("$ref #/%s points nowhere", ref[1])
		}
	}
}
