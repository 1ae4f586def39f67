package station

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/lastmile/lastmile/internal/fault"
	"github.com/lastmile/lastmile/internal/httpx"
)

// zipFeed returns a zip archive holding files (name → content).
func zipFeed(tb testing.TB, files map[string]string) []byte {
	tb.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, name := range slices.Sorted(maps.Keys(files)) {
		w, err := zw.Create(name)
		if err != nil {
			tb.Fatal(err)
		}
		if _, err := w.Write([]byte(files[name])); err != nil {
			tb.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

func importBytes(tb testing.TB, svc *Service, feed []byte) (ImportResult, error) {
	tb.Helper()
	return svc.ImportGTFS(context.Background(), bytes.NewReader(feed), int64(len(feed)))
}

// metroFeed is a feed with stations (location_type 1), their platforms and
// entrances, a bus stop outside any station, and a generic node.
const metroFeed = `stop_id,stop_code,stop_name,stop_lat,stop_lon,location_type,parent_station
place_SLKB,SB,Central Silk Board,12.9177,77.6238,1,
SLKB_P1,,Silk Board Platform 1,12.9178,77.6239,0,place_SLKB
SLKB_E1,,Silk Board Exit A,12.9176,77.6237,2,place_SLKB
place_HSR,HS,HSR Layout,12.9081,77.6476,1,
HSR_P1,,HSR Layout Platform 1,12.9082,77.6477,0,place_HSR
BUS_1,,Agara Bus Stop,12.9250,77.6400,0,
node_1,,,,,3,place_HSR
`

func TestImportStationsOfAZippedFeed(t *testing.T) {
	svc := newService(t)
	ctx := context.Background()
	res, err := importBytes(t, svc, zipFeed(t, map[string]string{"agency.txt": "agency_id\nx\n", "stops.txt": metroFeed}))
	if err != nil {
		t.Fatal(err)
	}
	if want := (ImportResult{Stations: 2, Created: 2, Ignored: 5}); res != want {
		t.Fatalf("import = %+v, want %+v", res, want)
	}
	if got := stationIDs(t, svc); !slices.Equal(got, []string{"place-hsr", "place-slkb"}) {
		t.Fatalf("stations = %v, want only the two location_type 1 stops", got)
	}
	sb, err := svc.Get(ctx, "place-slkb")
	if err != nil {
		t.Fatal(err)
	}
	if sb.Name != "Central Silk Board" || sb.Lat != 12.9177 || sb.Lng != 77.6238 || sb.RadiusM != DefaultRadiusM ||
		len(sb.Lines) != 0 || len(sb.Areas) != 0 {
		t.Fatalf("place-slkb = %+v", sb)
	}
}

func TestImportABareStopsFile(t *testing.T) {
	svc := newService(t)
	// A byte order mark, CRLF line ends, quoted fields with a comma, an
	// escaped quote and a line break (which becomes a space), padding, an extra column, and no
	// location_type column: every stop without a parent is a station.
	feed := "\ufeffstop_id,stop_name,stop_lat,stop_lon,zone_id\r\n" +
		"S1,\"Silk Board, Central\",12.9177,77.6238,z1\r\n" +
		"S2,\"The \"\"Hub\"\"\", 12.9081 ,77.6476,z1\r\n" +
		"S3,\"Two\r\nLines\",12.9,77.6,z2\r\n"
	dir := t.TempDir()
	file := filepath.Join(dir, "stops.txt")
	if err := os.WriteFile(file, []byte(feed), 0o600); err != nil {
		t.Fatal(err)
	}
	res, err := svc.ImportGTFSFile(context.Background(), file)
	if err != nil {
		t.Fatal(err)
	}
	if res.Created != 3 || res.Ignored != 0 {
		t.Fatalf("import = %+v, want 3 created", res)
	}
	for id, name := range map[string]string{"s1": "Silk Board, Central", "s2": `The "Hub"`, "s3": "Two Lines"} {
		st, err := svc.Get(context.Background(), id)
		if err != nil || st.Name != name {
			t.Errorf("station %s = %q, %v; want %q", id, st.Name, err, name)
		}
	}
	if s2, _ := svc.Get(context.Background(), "s2"); s2.Lat != 12.9081 {
		t.Errorf("s2 lat = %v, want 12.9081 (padding trimmed)", s2.Lat)
	}
}

func TestReimportUpdatesWithoutDuplicates(t *testing.T) {
	svc := newService(t)
	ctx := context.Background()
	if _, err := importBytes(t, svc, []byte(metroFeed)); err != nil {
		t.Fatal(err)
	}
	// What operators set survives a re-import.
	if _, err := svc.Update(ctx, "place-hsr", StationPatch{RadiusM: ptr(600), Lines: &[]string{"Blue"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.CreateArea(ctx, "place-hsr", AreaInput{ID: "hsr-bda", Name: "BDA Complex", Lat: ptr(12.91), Lng: ptr(77.64)}); err != nil {
		t.Fatal(err)
	}

	res, err := importBytes(t, svc, zipFeed(t, map[string]string{"feed/stops.txt": metroFeed}))
	if err != nil {
		t.Fatal(err)
	}
	if want := (ImportResult{Stations: 2, Unchanged: 2, Ignored: 5}); res != want {
		t.Fatalf("same feed again = %+v, want %+v", res, want)
	}

	renamed := strings.Replace(metroFeed, "HSR Layout,12.9081,77.6476", "HSR Layout Junction,12.9085,77.6476", 1)
	res, err = importBytes(t, svc, []byte(renamed))
	if err != nil {
		t.Fatal(err)
	}
	if want := (ImportResult{Stations: 2, Updated: 1, Unchanged: 1, Ignored: 5}); res != want {
		t.Fatalf("renamed feed = %+v, want %+v", res, want)
	}
	if got := stationIDs(t, svc); !slices.Equal(got, []string{"place-hsr", "place-slkb"}) {
		t.Fatalf("stations = %v, want the same two", got)
	}
	hsr, err := svc.Get(ctx, "place-hsr")
	if err != nil {
		t.Fatal(err)
	}
	if hsr.Name != "HSR Layout Junction" || hsr.Lat != 12.9085 {
		t.Errorf("place-hsr = %q at %v, want the new name and position", hsr.Name, hsr.Lat)
	}
	if hsr.RadiusM != 600 || !slices.Equal(hsr.Lines, []string{"Blue"}) || len(hsr.Areas) != 1 {
		t.Errorf("re-import lost what the operator set: %+v", hsr)
	}
}

func TestBrokenFeedsChangeNothing(t *testing.T) {
	svc := newService(t)
	good := "stop_id,stop_name,stop_lat,stop_lon\nS1,One,12.9,77.6\nS2,Two,12.8,77.7\n"
	if _, err := importBytes(t, svc, []byte(good)); err != nil {
		t.Fatal(err)
	}
	const header = "stop_id,stop_name,stop_lat,stop_lon,location_type,parent_station\n"
	// Every broken feed renames S1 on line 2 before its fault, and adds S9:
	// neither may survive.
	const first = "S1,Renamed,12.9,77.6,,\nS9,Nine,12.7,77.5,,\n"
	tests := []struct {
		name string
		feed []byte
		want []string // in the error
	}{
		{"bad latitude", []byte(header + first + "S2,Two,abc,77.7,,\n"), []string{"line 4", "stop_lat"}},
		{"latitude out of range", []byte(header + first + "S2,Two,95,77.7,,\n"), []string{"line 4", "stop_lat"}},
		{"empty longitude", []byte(header + first + "S2,Two,12.8,,,\n"), []string{"line 4", "stop_lon"}},
		{"longitude out of range", []byte(header + first + "S2,Two,12.8,-181,,\n"), []string{"line 4", "stop_lon"}},
		{"missing column", []byte("stop_id,stop_name,stop_lat\nS1,Renamed,12.9\n"), []string{"line 1", "stop_lon"}},
		{"missing columns", []byte("stop_id,stop_lat\nS1,12.9\n"), []string{"line 1", "stop_name, stop_lon"}},
		{"bare quote", []byte(header + first + "S2,Tw\"o,12.8,77.7,,\n"), []string{"line 4", "quote"}},
		{"unterminated quote", []byte(header + first + "S2,\"Two,12.8,77.7,,\n"), []string{"line 4"}},
		{"wrong number of fields", []byte(header + first + "S2,Two,12.8,77.7\n"), []string{"line 4", "number of fields"}},
		{"line numbers count lines inside quotes", []byte(header + "S1,\"Re\nnamed\",12.9,77.6,,\nS2,Two,x,77.7,,\n"), []string{"line 4", "stop_lat"}},
		{"repeated stop_id", []byte(header + first + "S1,Again,12.8,77.7,,\n"), []string{"line 4", "line 2", "S1"}},
		{"empty stop_id", []byte(header + first + ",Two,12.8,77.7,,\n"), []string{"line 4", "stop_id"}},
		{"empty stop_name", []byte(header + first + "S2,,12.8,77.7,,\n"), []string{"line 4", "stop_name"}},
		{"bad location_type", []byte(header + first + "S2,Two,12.8,77.7,7,\n"), []string{"line 4", "location_type"}},
		{"ids that collide", []byte(header + first + "s1,Also one,12.8,77.7,,\n"), []string{"line 4", `"s1"`, "line 2"}},
		{"reserved id", []byte(header + first + "NEARBY,Near,12.8,77.7,,\n"), []string{"line 4", "reserved"}},
		{"NUL in stop_name", []byte(header + first + "S2,Tw\x00o,12.8,77.7,,\n"), []string{"line 4", "stop_name", "control"}},
		{"bidirectional override in stop_name", []byte(header + first + "S2,Tw\u202eo,12.8,77.7,,\n"), []string{"line 4", "stop_name"}},
		{"stop_id too long", []byte(header + first + strings.Repeat("S", 300) + ",Two,12.8,77.7,,\n"), []string{"line 4", "stop_id", "longer than 255"}},
		{"row too long", []byte(header + first + "S2,\"" + strings.Repeat("x", MaxRowBytes) + "\",12.8,77.7,,\n"), []string{"line 4", "longer than 64 KiB"}},
		{"row too long over many quoted lines", []byte(header + first + "S2,\"" + strings.Repeat("x\n", MaxRowBytes) + "\",12.8,77.7,,\n"), []string{"line 4", "longer than 64 KiB"}},
		{"no stations", []byte(header + "P1,Platform,12.9,77.6,0,S1\n"), []string{"no stations"}},
		{"empty file", []byte(""), []string{"line 1", "empty"}},
		{"zip without stops.txt", zipFeed(t, map[string]string{"routes.txt": "route_id\n"}), []string{"no stops.txt"}},
		{"zip with two stops.txt", zipFeed(t, map[string]string{"a/stops.txt": good, "b/stops.txt": good}), []string{"more than one stops.txt"}},
		{"broken zip", []byte("PK\x03\x04 this is not a zip"), []string{"zip"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := importBytes(t, svc, tt.feed)
			if err == nil {
				t.Fatal("import succeeded, want an error")
			}
			if !errors.Is(err, fault.Of(fault.Invalid)) {
				t.Errorf("error %q is not of kind Invalid", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if got := stationIDs(t, svc); !slices.Equal(got, []string{"s1", "s2"}) {
				t.Errorf("stations = %v, want the two there were", got)
			}
			if s1, _ := svc.Get(context.Background(), "s1"); s1.Name != "One" {
				t.Errorf("s1 was renamed to %q by a broken feed", s1.Name)
			}
		})
	}
}

// An error quotes at most a short prefix of a bad value, however long.
func TestFeedErrorsQuoteShortPrefixes(t *testing.T) {
	svc := newService(t)
	long := strings.Repeat("9", 60_000)
	for _, feed := range []string{
		"stop_id,stop_name,stop_lat,stop_lon\nS1,One," + long + ",77.6\n",
		"stop_id,stop_name,stop_lat,stop_lon,location_type\nS1,One,12.9,77.6," + long + "\n",
		"stop_id,stop_name,stop_lat,stop_lon\n" + strings.Repeat("-", 200) + ",One,12.9,77.6\n",
	} {
		_, err := importBytes(t, svc, []byte(feed))
		if err == nil || !strings.Contains(err.Error(), "line 2") || len(err.Error()) > 300 {
			t.Errorf("error %.400q: want line 2 named and at most 300 bytes", err)
		}
	}
}

func TestImportRefusesOversizedFeeds(t *testing.T) {
	svc := newService(t)
	svc.limits = feedLimits{bytes: 200, rows: 3}
	rows := func(n int) string {
		var b strings.Builder
		b.WriteString("stop_id,stop_name,stop_lat,stop_lon\n")
		for i := range n {
			b.WriteString("S" + string(rune('a'+i)) + ",N,1,2\n")
		}
		return b.String()
	}
	tests := []struct {
		name string
		feed []byte
	}{
		{"too many rows", []byte(rows(4))},
		{"file too large", []byte(rows(3) + strings.Repeat(" ", 200))},
		{"stops.txt too large once unzipped", zipFeed(t, map[string]string{"stops.txt": rows(2) + "Sz,\"" + strings.Repeat("n", 300) + "\",1,2\n"})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := importBytes(t, svc, tt.feed)
			if !errors.Is(err, fault.Of(fault.TooLarge)) {
				t.Fatalf("import = %v, want an error of kind TooLarge", err)
			}
			if got := stationIDs(t, svc); len(got) != 0 {
				t.Fatalf("stations = %v, want none", got)
			}
		})
	}
	t.Run("within the limits", func(t *testing.T) {
		if _, err := importBytes(t, svc, []byte(rows(3))); err != nil {
			t.Fatal(err)
		}
	})
}

func TestSlugify(t *testing.T) {
	tests := []struct{ in, want string }{
		{"place_SLKB", "place-slkb"},
		{"12345", "12345"},
		{"  BMRCL:Silk  Board/2 ", "bmrcl-silk-board-2"},
		{"--a--", "a"},
		{"ಮೆಟ್ರೋ", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := slugify(tt.in); got != tt.want {
				t.Fatalf("slugify(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// An operator imports a feed from the browser: the body is the file. Others
// are refused, a broken feed is refused naming the line, and an upload over
// the body limit gets 413; none of them change anything.
func TestImportOverHTTP(t *testing.T) {
	e := newEnv(t)
	feed := zipFeed(t, map[string]string{"stops.txt": "stop_id,stop_name,stop_lat,stop_lon,location_type\nPL1,Platform,12.9,77.6,0\nST1,Silk Board,12.9177,77.6238,1\n"})
	for _, c := range []struct {
		name, token string
		want        int
	}{{"no token", "", 401}, {"rider", riderToken, 403}, {"driver", driverToken, 403}} {
		if code, _ := e.call(t, "POST", "/api/v1/stations/import", c.token, string(feed)); code != c.want {
			t.Errorf("import as %s = %d, want %d", c.name, code, c.want)
		}
	}
	code, problem := e.call(t, "POST", "/api/v1/stations/import", operatorToken, "stop_id,stop_name\nX,No position\n")
	if code != 422 || !strings.Contains(fmt.Sprint(problem), "stop_lat") {
		t.Errorf("a feed without coordinates = %d %v, want 422 naming stop_lat", code, problem)
	}
	code, problem = e.call(t, "POST", "/api/v1/stations/import", operatorToken, strings.Repeat("x", httpx.MaxBodyBytes+1))
	if code != 413 {
		t.Errorf("an oversized upload = %d %v, want 413", code, problem)
	}
	if ids := stationIDs(t, e.svc); len(ids) != 0 {
		t.Fatalf("refused imports created %v", ids)
	}
	code, res := e.call(t, "POST", "/api/v1/stations/import", operatorToken, string(feed))
	if code != 200 || res["created"] != float64(1) || res["ignored"] != float64(1) {
		t.Fatalf("import = %d %v, want 1 created and 1 ignored", code, res)
	}
	if st, err := e.svc.Get(context.Background(), "st1"); err != nil || st.Name != "Silk Board" {
		t.Fatalf("imported station = %+v, %v", st, err)
	}
}

// endless yields n bytes of b, repeated, without holding them.
type endless struct {
	b byte
	n int
}

func (e *endless) Read(p []byte) (int, error) {
	if e.n == 0 {
		return 0, io.EOF
	}
	k := min(len(p), e.n)
	for i := range p[:k] {
		p[i] = e.b
	}
	e.n -= k
	return k, nil
}

// A 40 MB row is refused after its first 64 KiB: parsing it allocates a
// few hundred KiB, not the row (the probe saw 320 MB).
func TestAHugeRowIsNotReadIntoMemory(t *testing.T) {
	feed := io.MultiReader(strings.NewReader("stop_id,stop_name,stop_lat,stop_lon\nS1,"), &endless{'x', 40 << 20}, strings.NewReader(",12.9,77.6\n"))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, _, err := parseStops(feed, MaxFeedRows)
	runtime.ReadMemStats(&after)
	if err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("err = %v, want the row on line 2 refused", err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4<<20 {
		t.Fatalf("parsing allocated %d bytes, want under 4 MiB", alloc)
	}
}
