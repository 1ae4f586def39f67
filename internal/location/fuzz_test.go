package location

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/lastmile/lastmile/internal/fault"
	"github.com/lastmile/lastmile/internal/geo"
	"github.com/lastmile/lastmile/internal/httpx"
)

// fuzzNow is the server clock of the fuzz targets.
var fuzzNow = time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)

// acceptable fails unless f is what Check may let through after prev.
func acceptable(t *testing.T, l Limits, prev *Fix, f Fix) {
	t.Helper()
	if err := l.Check(prev, f, fuzzNow); err != nil {
		var rej *Rejection
		if !errors.As(err, &rej) || rej.Code == "" || !errors.Is(err, fault.Of(fault.Invalid)) {
			t.Fatalf("Check refused with %v, not a coded Rejection", err)
		}
		return
	}
	p := f.Point
	if math.IsNaN(p.Lat) || math.IsNaN(p.Lng) || !geo.ValidLat(p.Lat) || !geo.ValidLng(p.Lng) {
		t.Fatalf("position %v accepted", p)
	}
	if f.SpeedMps != nil && !(*f.SpeedMps >= 0 && !math.IsInf(*f.SpeedMps, 0)) {
		t.Fatalf("speed %v accepted", *f.SpeedMps)
	}
	if f.Heading != nil && !(*f.Heading >= 0 && *f.Heading < 360) {
		t.Fatalf("heading %v accepted", *f.Heading)
	}
	if f.At.After(fuzzNow.Add(l.MaxFuture)) {
		t.Fatalf("a fix %s ahead accepted", f.At.Sub(fuzzNow))
	}
	if l.MaxAge > 0 && f.At.Before(fuzzNow.Add(-l.MaxAge)) {
		t.Fatalf("a fix %s old accepted", fuzzNow.Sub(f.At))
	}
	if prev == nil {
		return
	}
	if !f.At.After(prev.At) {
		t.Fatalf("a fix at %s after one at %s accepted", f.At, prev.At)
	}
	// The speed limit, plus 50 m of GPS error.
	if d, secs := geo.DistanceM(prev.Point, p), f.At.Sub(prev.At).Seconds(); d > 50+l.MaxSpeedMps*secs {
		t.Fatalf("%.0f m in %.3f s accepted", d, secs)
	}
}

// Fix plausibility: whatever two fixes hold, an accepted one is on the
// globe, not in the future, after the previous one and reached at a
// believable speed; a refused one has a code.
func FuzzCheck(f *testing.F) {
	f.Add(12.9, 77.6, int64(-2000), 12.9001, 77.6001, int64(-1000), 9.0, 90.0, true)
	f.Add(12.9, 77.6, int64(-2000), -12.9, -77.6, int64(-1000), -1.0, 360.0, true)
	f.Add(0.0, 0.0, int64(0), 90.0, 180.0, int64(31_000), math.Inf(1), math.NaN(), false)
	f.Add(12.9, 77.6, int64(-2000), 12.90082, 77.6, int64(-1000), 30.0, 0.0, true) // 91 m in 1 s: at the limit with GPS error
	f.Add(12.9, 77.6, int64(-2000), 12.9, 77.6, int64(-90_000), 0.0, 0.0, false)   // 90 s old
	l := Limits{}
	l.defaults()
	f.Fuzz(func(t *testing.T, lat1, lng1 float64, ms1 int64, lat2, lng2 float64, ms2 int64, speed, heading float64, hasPrev bool) {
		var prev *Fix
		if hasPrev {
			prev = &Fix{Point: geo.Point{Lat: lat1, Lng: lng1}, At: fuzzNow.Add(time.Duration(ms1) * time.Millisecond)}
			if l.Check(nil, *prev, fuzzNow) != nil {
				return // a previous fix is one that was accepted
			}
		}
		acceptable(t, l, prev, Fix{Point: geo.Point{Lat: lat2, Lng: lng2}, At: fuzzNow.Add(time.Duration(ms2) * time.Millisecond), SpeedMps: &speed, Heading: &heading})
	})
}

// The socket's location message decoder: any payload decodes to a fix or
// is refused with a coded Rejection.
func FuzzFixMessage(f *testing.F) {
	f.Add([]byte(`{"type":"location","lat":12.905,"lng":77.6387,"speed_mps":9,"heading":180,"at":"2026-11-25T07:59:59Z"}`))
	f.Add([]byte(`{"type":"location","lat":"NaN","lng":1e400}`))
	f.Add([]byte(`{"type":"location","lat":12.9,"lng":77.6,"at":"2000-01-01T00:00:00Z","extra":1}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		fix, err := decodeFixMessage(json.RawMessage(raw))
		if err != nil {
			var rej *Rejection
			if !errors.As(err, &rej) || rej.Code == "" {
				t.Fatalf("decoding %q: %v is not a coded Rejection", raw, err)
			}
			return
		}
		if fix.At.IsZero() {
			fix.At = fuzzNow
		}
		acceptable(t, Limits{MaxSpeedMps: 150 / 3.6, MaxFuture: 30 * time.Second}, nil, fix)
	})
}

// REST fix bodies: one fix or {"fixes": [...]}, decoded as the handler does.
func FuzzFixBody(f *testing.F) {
	f.Add([]byte(`{"lat":12.905,"lng":77.6387,"speed_mps":9}`))
	f.Add([]byte(`{"fixes":[{"lat":12.9,"lng":77.6,"at":"2026-11-25T07:59:58Z"},{"lat":12.9001,"lng":77.6,"at":"2026-11-25T07:59:59Z"}]}`))
	f.Add([]byte(`{"lat":12.9,"fixes":[{}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		var in struct {
			FixInput
			Fixes []FixInput `json:"fixes"`
		}
		if err := httpx.Decode(r, &in); err != nil {
			if _, _, ok := fault.KindOf(err); !ok {
				t.Fatalf("decoding %q: %v is not a client error", body, err)
			}
			return
		}
		for _, fi := range append(in.Fixes, in.FixInput) {
			fix, err := fi.fix()
			if err != nil {
				var rej *Rejection
				if !errors.As(err, &rej) || rej.Code == "" {
					t.Fatalf("%v is not a coded Rejection", err)
				}
				continue
			}
			if fix.At.IsZero() {
				fix.At = fuzzNow
			}
			acceptable(t, Limits{MaxSpeedMps: 150 / 3.6, MaxFuture: 30 * time.Second}, nil, fix)
		}
	})
}
