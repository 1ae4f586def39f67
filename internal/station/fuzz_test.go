package station

import (
	"bytes"
	"testing"

	"github.com/lastmile/lastmile/internal/fault"
	"github.com/lastmile/lastmile/internal/geo"
	"github.com/lastmile/lastmile/internal/httpx/httpxtest"
	"github.com/lastmile/lastmile/internal/text"
)

// decodeBody runs body through httpx.Decode as a handler would.
var decodeBody = httpxtest.DecodeBody

func checkClean(t *testing.T, field, s string, max int) {
	t.Helper()
	if again, problem := text.Line(s); problem != "" || again != s || s == "" || text.Len(s) > max {
		t.Fatalf("%s %q accepted (%s)", field, s, problem)
	}
}

func checkArea(t *testing.T, a Area) {
	t.Helper()
	if !slugPattern.MatchString(a.ID) || len(a.ID) > MaxIDLen {
		t.Fatalf("area id %q accepted", a.ID)
	}
	checkClean(t, "area name", a.Name, MaxNameLen)
	if !geo.ValidLat(a.Lat) || !geo.ValidLng(a.Lng) {
		t.Fatalf("area position %v,%v accepted", a.Lat, a.Lng)
	}
}

// Station bodies: what is accepted has a slug id, clean names and lines,
// a valid position and radius, and at most MaxAreas valid areas.
func FuzzStationBody(f *testing.F) {
	f.Add([]byte(`{"id":"silk-board","name":"Central Silk Board","lines":["Yellow"],"lat":12.9177,"lng":77.6238,"radius_m":800,"areas":[{"id":"madiwala","name":"Madiwala","lat":12.92,"lng":77.61}]}`))
	f.Add([]byte(`{"id":"nearby","name":"A\u202eB","lat":91,"lng":1e309}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var in StationInput
		if !decodeBody(t, body, &in) {
			return
		}
		st, err := in.validate()
		if err != nil {
			return
		}
		if !slugPattern.MatchString(st.ID) || len(st.ID) > MaxIDLen || reservedIDs[st.ID] {
			t.Fatalf("station id %q accepted", st.ID)
		}
		checkClean(t, "name", st.Name, MaxNameLen)
		for _, l := range st.Lines {
			checkClean(t, "line", l, MaxLineNameLen)
		}
		if len(st.Lines) > MaxLines || len(st.Areas) > MaxAreas {
			t.Fatalf("%d lines, %d areas accepted", len(st.Lines), len(st.Areas))
		}
		if !geo.ValidLat(st.Lat) || !geo.ValidLng(st.Lng) || st.RadiusM < MinRadiusM || st.RadiusM > MaxRadiusM {
			t.Fatalf("position %v,%v radius %d accepted", st.Lat, st.Lng, st.RadiusM)
		}
		for _, a := range st.Areas {
			checkArea(t, a)
		}
	})
}

// Station patches: whatever a patch sets, it sets validly.
func FuzzStationPatchBody(f *testing.F) {
	f.Add([]byte(`{"name":"Silk Board","lines":["Yellow","Blue"],"radius_m":600}`))
	f.Add([]byte(`{"lat":-90.0001,"lines":["a","A"]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var p StationPatch
		if !decodeBody(t, body, &p) || p.validate() != nil {
			return
		}
		if p.Name != nil {
			checkClean(t, "name", *p.Name, MaxNameLen)
		}
		if p.Lines != nil {
			for _, l := range *p.Lines {
				checkClean(t, "line", l, MaxLineNameLen)
			}
		}
		if p.Lat != nil && !geo.ValidLat(*p.Lat) || p.Lng != nil && !geo.ValidLng(*p.Lng) {
			t.Fatalf("position %v,%v accepted", p.Lat, p.Lng)
		}
		if p.RadiusM != nil && (*p.RadiusM < MinRadiusM || *p.RadiusM > MaxRadiusM) {
			t.Fatalf("radius %d accepted", *p.RadiusM)
		}
	})
}

// Area bodies, new and patched.
func FuzzAreaBody(f *testing.F) {
	f.Add([]byte(`{"id":"kudlu-gate","name":"Kudlu Gate","lat":12.89,"lng":77.64}`))
	f.Add([]byte(`{"id":"Kudlu Gate","name":"\u0000","lat":null}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var in AreaInput
		if decodeBody(t, body, &in) {
			var v fault.Validation
			if a := in.validate(&v, ""); v.Err() == nil {
				checkArea(t, a)
			}
		}
		var p AreaPatch
		if decodeBody(t, body, &p) && p.validate() == nil && p.Name != nil {
			checkClean(t, "name", *p.Name, MaxNameLen)
		}
	})
}

// GTFS stops.txt: any bytes are parsed or refused with a fault (never a
// panic); what is accepted is a set of valid stations with distinct ids.
func FuzzParseStops(f *testing.F) {
	f.Add([]byte(metroFeed))
	f.Add([]byte("\ufeffstop_id,stop_name,stop_lat,stop_lon\r\nS1,\"Silk, Board\",12.9,77.6\r\nS2,\"Two\nLines\",12.8,77.7\r\n"))
	f.Add([]byte("stop_id,stop_name,stop_lat,stop_lon\nS1,Be\x00ta,12.8,77.7\n"))
	f.Fuzz(func(t *testing.T, feed []byte) {
		stations, ignored, err := parseStops(bytes.NewReader(feed), 1000)
		if err != nil {
			if _, _, ok := fault.KindOf(err); !ok {
				t.Fatalf("error %v is not a client error", err)
			}
			if len(err.Error()) > 400 {
				t.Fatalf("error is %d bytes long", len(err.Error()))
			}
			return
		}
		if len(stations) == 0 || ignored < 0 {
			t.Fatalf("%d stations, %d ignored accepted", len(stations), ignored)
		}
		seen := map[string]bool{}
		for _, st := range stations {
			if !slugPattern.MatchString(st.ID) || len(st.ID) > MaxIDLen || reservedIDs[st.ID] || seen[st.ID] {
				t.Fatalf("station id %q accepted", st.ID)
			}
			seen[st.ID] = true
			checkClean(t, "stop_name", st.Name, MaxNameLen)
			if !geo.ValidLat(st.Lat) || !geo.ValidLng(st.Lng) {
				t.Fatalf("position %v,%v accepted", st.Lat, st.Lng)
			}
		}
	})
}
