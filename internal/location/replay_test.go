package location

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/lastmile/lastmile/internal/geo"
)

// A driver whose phone reported a stale position far away (a glitch
// accepted as the first fix, or a reconnect from elsewhere) is refused
// twice, then the agreeing fixes move the track and the approach is made.
func TestIngestReanchorsOnFixesThatAgree(t *testing.T) {
	tr := newTracker(t, Config{})
	tr.mustSend(0, -50_000) // 50 km south: where the phone last was
	tr.loadRoute()
	for i, m := range []float64{-400, -390} {
		if code := rejectionCode(t, tr.send(time.Duration(i+1)*time.Second, m)); code != "implausible_speed" {
			t.Fatalf("fix %d near A = %q, want implausible_speed", i+1, code)
		}
	}
	tr.wantOffers()
	tr.mustSend(3*time.Second, -380) // the third that agrees: re-anchored
	tr.wantOffers("A")
	tr.mustSend(4*time.Second, -370)
	if code := rejectionCode(t, tr.send(5*time.Second, -50_000)); code != "implausible_speed" {
		t.Fatalf("one jump back = %q, want implausible_speed", code)
	}
	tr.mustSend(6*time.Second, -350)
}

// A glitch that put the driver at station B does not pass B when the
// track is re-anchored far from it: B stays ahead on the route.
func TestReanchorForgetsStationsReachedByAGlitch(t *testing.T) {
	tr := newTracker(t, Config{})
	tr.mustSend(0, 3000) // at B, 3 km north: a glitch
	tr.loadRoute()
	for i, m := range []float64{-2000, -1990} {
		if code := rejectionCode(t, tr.send(time.Duration(i+1)*time.Second, m)); code != "implausible_speed" {
			t.Fatalf("fix %d = %q, want implausible_speed", i+1, code)
		}
	}
	tr.mustSend(3*time.Second, -1980)
	var ahead []string
	for _, st := range tr.s.state(tr.driver).route.Ahead {
		ahead = append(ahead, st.ID)
	}
	if !slices.Equal(ahead, []string{"A", "B"}) {
		t.Fatalf("stations ahead after re-anchoring = %v, want [A B]: a glitch passed a station", ahead)
	}
}

// A driver offline for longer than OfflineAfter starts a new track
// wherever it comes back: its first fix counts at once.
func TestIngestNewTrackAfterOffline(t *testing.T) {
	tr := newTracker(t, Config{}) // OfflineAfter 60 s
	tr.mustSend(0, -50_000)
	tr.loadRoute()
	if code := rejectionCode(t, tr.send(59*time.Second, -400)); code != "implausible_speed" {
		t.Fatalf("50 km in 59 s = %q, want implausible_speed", code)
	}
	tr.mustSend(61*time.Second, -400) // 61 s after the last accepted fix
	tr.wantOffers("A")
}

// recordedFix is a fix and when the server receives it.
type recordedFix struct {
	f    Fix
	seen time.Time
}

// recordedTrack is a drive as a phone records it, one fix a second: city
// traffic up to 22 m/s with stops at signals, expressway stretches up to
// 34 m/s, turns, GPS error
// that wanders within 15 m with spikes of up to 20 m, fixes missing for a
// few seconds now and then and for 45 s in a tunnel, device speed and
// heading on most fixes, and network delay before the server sees each.
//
// With the former rule (50 m of error allowed only when two fixes are
// less than 50 m apart) two fixes of this track were refused: expressway
// speed plus GPS error.
func recordedTrack(n int, seed uint64) []recordedFix {
	rng := rand.New(rand.NewPCG(seed, 14))
	pos := base
	heading := rng.Float64() * 360
	speed, target := 0.0, 12.0
	errN, errE := 0.0, 0.0
	at := t0
	stop := 0 // seconds left at a signal
	var out []recordedFix
	for len(out) < n {
		prev := at
		at = at.Add(time.Second + time.Duration(rng.IntN(40)-20)*time.Millisecond)
		if rng.IntN(300) == 0 { // a few seconds without a fix
			at = at.Add(time.Duration(2+rng.IntN(8)) * time.Second)
		}
		if len(out) == n/2 { // a tunnel
			at = at.Add(45 * time.Second)
		}
		dt := at.Sub(prev).Seconds()
		switch {
		case stop > 0:
			stop--
			speed = 0
		case rng.IntN(120) == 0:
			stop = 20 + rng.IntN(70)
		default:
			if rng.IntN(30) == 0 {
				target = 4 + rng.Float64()*18
				if expressway := len(out)/1000%3 == 1; expressway {
					target = 26 + rng.Float64()*8 // up to 122 km/h
				}
			}
			speed += math.Max(-3, math.Min(2, target-speed)) // accelerate 2 m/s², brake 3
		}
		if rng.IntN(200) == 0 {
			heading = math.Mod(heading+90*float64(1-2*rng.IntN(2))+360, 360) // a turn
		}
		heading = math.Mod(heading+rng.NormFloat64()*2+360, 360)
		rad := heading * math.Pi / 180
		d := speed * dt
		pos = geo.Point{Lat: pos.Lat + d*math.Cos(rad)/mPerDeg, Lng: pos.Lng + d*math.Sin(rad)/(mPerDeg*math.Cos(pos.Lat*math.Pi/180))}
		errN = math.Max(-15, math.Min(15, errN+rng.NormFloat64()*1.5))
		errE = math.Max(-15, math.Min(15, errE+rng.NormFloat64()*1.5))
		spikeN, spikeE := 0.0, 0.0
		if rng.IntN(100) == 0 {
			spikeN, spikeE = rng.Float64()*40-20, rng.Float64()*40-20
		}
		n, e := errN+spikeN, errE+spikeE
		seen := geo.Point{Lat: pos.Lat + n/mPerDeg, Lng: pos.Lng + e/(mPerDeg*math.Cos(pos.Lat*math.Pi/180))}
		f := Fix{Point: seen, At: at}
		if rng.IntN(10) > 0 {
			v, h := math.Max(0, speed+rng.NormFloat64()*0.5), heading
			f.SpeedMps, f.Heading = &v, &h
		}
		out = append(out, recordedFix{f: f, seen: at.Add(time.Duration(150+rng.IntN(1800)) * time.Millisecond)})
	}
	return out
}

// TestGPSReplay replays a recorded-style drive of 10,000 fixes with bad
// fixes slipped in between: every real fix is accepted, and every bad one
// is refused with its code and changes nothing.
func TestGPSReplay(t *testing.T) {
	tr := newTracker(t, Config{})
	track := recordedTrack(10_000, 1)
	type bad struct {
		name string
		mk   func(last Fix, now time.Time) Fix
		code string
	}
	moved := func(last Fix, m float64) geo.Point { return north(last.Point, m) }
	bads := []bad{
		{"jump across the world", func(l Fix, now time.Time) Fix {
			return Fix{Point: geo.Point{Lat: -33.86, Lng: 151.21}, At: now}
		}, "implausible_speed"},
		{"2 km in a second", func(l Fix, now time.Time) Fix { return Fix{Point: moved(l, 2000), At: l.At.Add(time.Second)} }, "implausible_speed"},
		{"back-dated to 2000", func(l Fix, now time.Time) Fix {
			return Fix{Point: l.Point, At: time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)}
		}, "old_fix"},
		{"back-dated two minutes", func(l Fix, now time.Time) Fix { return Fix{Point: l.Point, At: now.Add(-2 * time.Minute)} }, "old_fix"},
		{"an hour in the future", func(l Fix, now time.Time) Fix { return Fix{Point: l.Point, At: now.Add(time.Hour)} }, "future_fix"},
		{"a minute in the future", func(l Fix, now time.Time) Fix { return Fix{Point: l.Point, At: now.Add(time.Minute)} }, "future_fix"},
		{"out of order", func(l Fix, now time.Time) Fix { return Fix{Point: l.Point, At: l.At.Add(-500 * time.Millisecond)} }, "stale_fix"},
		{"a repeat", func(l Fix, now time.Time) Fix { return l }, "stale_fix"},
		{"NaN latitude", func(l Fix, now time.Time) Fix {
			return Fix{Point: geo.Point{Lat: math.NaN(), Lng: l.Point.Lng}, At: now}
		}, "invalid_lat"},
		{"infinite longitude", func(l Fix, now time.Time) Fix {
			return Fix{Point: geo.Point{Lat: l.Point.Lat, Lng: math.Inf(-1)}, At: now}
		}, "invalid_lng"},
		{"latitude 91", func(l Fix, now time.Time) Fix { return Fix{Point: geo.Point{Lat: 91, Lng: l.Point.Lng}, At: now} }, "invalid_lat"},
		{"longitude -181", func(l Fix, now time.Time) Fix { return Fix{Point: geo.Point{Lat: l.Point.Lat, Lng: -181}, At: now} }, "invalid_lng"},
		{"NaN speed", func(l Fix, now time.Time) Fix { v := math.NaN(); return Fix{Point: l.Point, At: now, SpeedMps: &v} }, "invalid_speed"},
		{"heading 400", func(l Fix, now time.Time) Fix { h := 400.0; return Fix{Point: l.Point, At: now, Heading: &h} }, "invalid_heading"},
	}
	accepted, refused := 0, 0
	var last Fix
	for i, r := range track {
		tr.now = r.seen
		if err := tr.s.Ingest(tr.driver, r.f); err != nil {
			t.Fatalf("recorded fix %d (at +%v) refused: %v", i, r.f.At.Sub(t0), err)
		}
		accepted++
		last = r.f
		if i%97 == 50 { // now and then a bad fix arrives just after a good one
			b := bads[(i/97)%len(bads)]
			if code := rejectionCode(t, tr.s.Ingest(tr.driver, b.mk(last, tr.now))); code != b.code {
				t.Fatalf("after fix %d, %s = %q, want %q", i, b.name, code, b.code)
			}
			if got := tr.s.state(tr.driver).last; !got.At.Equal(last.At) || got.Point != last.Point {
				t.Fatalf("after fix %d, %s changed the track", i, b.name)
			}
			refused++
		}
	}
	if accepted != 10_000 || refused < 100 {
		t.Fatalf("accepted %d of 10000 recorded fixes, refused %d bad ones", accepted, refused)
	}
}
