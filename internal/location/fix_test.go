package location

import (
	"errors"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/lastmile/lastmile/internal/fault"
	"github.com/lastmile/lastmile/internal/geo"
)

// t0 is the fixed server time tests start from.
var t0 = time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)

// base is the point fixtures are placed around (central Bengaluru).
var base = geo.Point{Lat: 12.9716, Lng: 77.5946}

// mPerDeg is the length of one degree of latitude on geo's sphere, so that
// north places points at exact great-circle distances.
const mPerDeg = geo.EarthRadiusM * math.Pi / 180

// north returns the point m metres north of p (south when m < 0).
func north(p geo.Point, m float64) geo.Point {
	return geo.Point{Lat: p.Lat + m/mPerDeg, Lng: p.Lng}
}

func ptr[T any](v T) *T { return &v }

// rejectionCode returns the code of err's *Rejection, "" for nil, and fails
// when err is some other error or not of kind Invalid.
func rejectionCode(tb testing.TB, err error) string {
	tb.Helper()
	if err == nil {
		return ""
	}
	var rej *Rejection
	if !errors.As(err, &rej) {
		tb.Fatalf("error %v (%T) is not a *Rejection", err, err)
	}
	if !errors.Is(err, fault.Of(fault.Invalid)) {
		tb.Errorf("rejection %q is not of kind Invalid", rej.Code)
	}
	return rej.Code
}

func TestLimitsCheck(t *testing.T) {
	lim := Limits{MaxSpeedMps: 150 / 3.6, MaxFuture: 30 * time.Second, MaxAge: time.Minute}
	now := t0
	prev := &Fix{Point: base, At: now.Add(-10 * time.Second)}
	// In 10 s the limit allows 416.7 m driven, plus 50 m of GPS error.
	tests := []struct {
		name string
		prev *Fix
		f    Fix
		want string // rejection code, "" when accepted
	}{
		{"valid first fix", nil, Fix{Point: base, At: now}, ""},
		{"valid first fix with speed and heading", nil, Fix{Point: base, At: now, SpeedMps: ptr(8.0), Heading: ptr(270.0)}, ""},
		{"valid fix after the previous one", prev, Fix{Point: north(base, 100), At: now}, ""},
		{"lat at the pole", nil, Fix{Point: geo.Point{Lat: 90, Lng: 0}, At: now}, ""},
		{"lng at the antimeridian", nil, Fix{Point: geo.Point{Lat: 0, Lng: -180}, At: now}, ""},

		{"lat above 90", nil, Fix{Point: geo.Point{Lat: 90.0001, Lng: 0}, At: now}, "invalid_lat"},
		{"lat below -90", nil, Fix{Point: geo.Point{Lat: -91, Lng: 0}, At: now}, "invalid_lat"},
		{"lat NaN", nil, Fix{Point: geo.Point{Lat: math.NaN(), Lng: 0}, At: now}, "invalid_lat"},
		{"lat +Inf", nil, Fix{Point: geo.Point{Lat: math.Inf(1), Lng: 0}, At: now}, "invalid_lat"},
		{"lat -Inf", nil, Fix{Point: geo.Point{Lat: math.Inf(-1), Lng: 0}, At: now}, "invalid_lat"},
		{"lng above 180", nil, Fix{Point: geo.Point{Lat: 0, Lng: 180.5}, At: now}, "invalid_lng"},
		{"lng below -180", nil, Fix{Point: geo.Point{Lat: 0, Lng: -181}, At: now}, "invalid_lng"},
		{"lng NaN", nil, Fix{Point: geo.Point{Lat: 0, Lng: math.NaN()}, At: now}, "invalid_lng"},
		{"lng +Inf", nil, Fix{Point: geo.Point{Lat: 0, Lng: math.Inf(1)}, At: now}, "invalid_lng"},
		{"lng -Inf", nil, Fix{Point: geo.Point{Lat: 0, Lng: math.Inf(-1)}, At: now}, "invalid_lng"},

		{"speed zero", nil, Fix{Point: base, At: now, SpeedMps: ptr(0.0)}, ""},
		{"speed negative", nil, Fix{Point: base, At: now, SpeedMps: ptr(-1.0)}, "invalid_speed"},
		{"speed NaN", nil, Fix{Point: base, At: now, SpeedMps: ptr(math.NaN())}, "invalid_speed"},
		{"speed +Inf", nil, Fix{Point: base, At: now, SpeedMps: ptr(math.Inf(1))}, "invalid_speed"},

		{"heading zero", nil, Fix{Point: base, At: now, Heading: ptr(0.0)}, ""},
		{"heading just below 360", nil, Fix{Point: base, At: now, Heading: ptr(359.99)}, ""},
		{"heading 360", nil, Fix{Point: base, At: now, Heading: ptr(360.0)}, "invalid_heading"},
		{"heading negative", nil, Fix{Point: base, At: now, Heading: ptr(-0.5)}, "invalid_heading"},
		{"heading NaN", nil, Fix{Point: base, At: now, Heading: ptr(math.NaN())}, "invalid_heading"},
		{"heading +Inf", nil, Fix{Point: base, At: now, Heading: ptr(math.Inf(1))}, "invalid_heading"},

		{"exactly MaxFuture ahead", nil, Fix{Point: base, At: now.Add(30 * time.Second)}, ""},
		{"more than MaxFuture ahead", nil, Fix{Point: base, At: now.Add(30*time.Second + time.Millisecond)}, "future_fix"},
		{"far in the future after a fix", prev, Fix{Point: base, At: now.Add(time.Hour)}, "future_fix"},

		{"exactly MaxAge old", nil, Fix{Point: base, At: now.Add(-time.Minute)}, ""},
		{"older than MaxAge", nil, Fix{Point: base, At: now.Add(-time.Minute - time.Millisecond)}, "old_fix"},
		{"back-dated years", prev, Fix{Point: base, At: time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)}, "old_fix"},

		{"older than the previous fix", prev, Fix{Point: base, At: prev.At.Add(-time.Second)}, "stale_fix"},
		{"same time and place as the previous fix", prev, Fix{Point: base, At: prev.At}, "stale_fix"},
		{"same time as the previous fix, elsewhere", prev, Fix{Point: north(base, 10), At: prev.At}, "stale_fix"},

		{"implied speed just below the limit", prev, Fix{Point: north(base, 460), At: now}, ""},
		{"implied speed above the limit", prev, Fix{Point: north(base, 470), At: now}, "implausible_speed"},
		{"at the limit, with 40 m of GPS error", prev, Fix{Point: north(base, 456), At: now}, ""},
		{"device speed does not excuse a jump", prev, Fix{Point: north(base, 5000), At: now, SpeedMps: ptr(10.0)}, "implausible_speed"},
		{"GPS jitter within 50 m in 1 ms", prev, Fix{Point: north(base, 49), At: prev.At.Add(time.Millisecond)}, ""},
		{"jitter above 50 m in 1 ms", prev, Fix{Point: north(base, 60), At: prev.At.Add(time.Millisecond)}, "implausible_speed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := lim.Check(tt.prev, tt.f, now)
			if got := rejectionCode(t, err); got != tt.want {
				t.Fatalf("Check = %q (%v), want %q", got, err, tt.want)
			}
			if tt.want == "stale_fix" && !errors.Is(err, ErrOutOfOrder) {
				t.Errorf("Check = %v, want ErrOutOfOrder", err)
			}
		})
	}
}

// TestLimitsAccept plays sequences of fixes of one driver (one a second
// unless said) through Accept and checks which are refused, and from
// where the track continues.
func TestLimitsAccept(t *testing.T) {
	lim := Limits{}
	lim.defaults() // 150 km/h, 60 s old at most, new track after 60 s, re-anchor on 3
	type step struct {
		at   time.Duration // after t0
		m    float64       // metres north of base
		want string        // rejection code, "" when accepted
		skew time.Duration // how far the fix's clock is ahead of the server's
	}
	far := 100_000.0 // 100 km away
	tests := []struct {
		name      string
		steps     []step
		restarted []int // steps whose acceptance restarted the track
	}{
		{"a single jump is refused and the track goes on", []step{
			{0, 0, "", 0}, {1 * time.Second, 20, "", 0}, {2 * time.Second, far, "implausible_speed", 0},
			{3 * time.Second, 60, "", 0}, {4 * time.Second, 80, "", 0},
		}, nil},
		{"a glitch accepted first: three real fixes that agree re-anchor", []step{
			{0, far, "", 0}, {1 * time.Second, 0, "implausible_speed", 0}, {2 * time.Second, 20, "implausible_speed", 0},
			{3 * time.Second, 40, "", 0}, {4 * time.Second, 60, "", 0},
		}, []int{3}},
		{"reconnected far away within the offline window", []step{
			{0, 0, "", 0}, {30 * time.Second, far, "implausible_speed", 0}, {31 * time.Second, far + 10, "implausible_speed", 0},
			{32 * time.Second, far + 20, "", 0}, {33 * time.Second, far + 30, "", 0}, {34 * time.Second, 0, "implausible_speed", 0},
		}, []int{3}},
		{"back after longer than the offline window: a new track at once", []step{
			{0, 0, "", 0}, {61 * time.Second, far, "", 0}, {62 * time.Second, far + 15, "", 0}, {63 * time.Second, 0, "implausible_speed", 0},
		}, []int{1}},
		{"jumps that disagree with each other never re-anchor", []step{
			{0, 0, "", 0}, {1 * time.Second, far, "implausible_speed", 0}, {2 * time.Second, -far, "implausible_speed", 0},
			{3 * time.Second, far, "implausible_speed", 0}, {4 * time.Second, -far, "implausible_speed", 0}, {5 * time.Second, 30, "", 0},
		}, nil},
		{"a fix back on the track clears the suspects", []step{
			{0, 0, "", 0}, {1 * time.Second, far, "implausible_speed", 0}, {2 * time.Second, far + 10, "implausible_speed", 0},
			{3 * time.Second, 40, "", 0}, {4 * time.Second, far + 20, "implausible_speed", 0}, {5 * time.Second, 60, "", 0},
		}, nil},
		{"a fix dated ahead (device clock): three current ones that agree re-anchor", []step{
			{25 * time.Second, 0, "", 25 * time.Second}, {1 * time.Second, 10, "stale_fix", 0}, {2 * time.Second, 20, "stale_fix", 0},
			{3 * time.Second, 30, "", 0}, {4 * time.Second, 40, "", 0},
		}, []int{3}},
		{"out-of-order fixes behind a current last fix never re-anchor", []step{
			{0, 0, "", 0}, {5 * time.Second, 50, "", 0}, {1 * time.Second, 10, "stale_fix", -5 * time.Second},
			{2 * time.Second, 20, "stale_fix", -4 * time.Second}, {3 * time.Second, 30, "stale_fix", -3 * time.Second},
			{4 * time.Second, 40, "stale_fix", -2 * time.Second}, {6 * time.Second, 60, "", 0},
		}, nil},
		{"one jump repeated is not several that agree", []step{
			{0, 0, "", 0}, {1 * time.Second, far, "implausible_speed", 0}, {1 * time.Second, far, "implausible_speed", 0},
			{1 * time.Second, far, "implausible_speed", 0}, {1 * time.Second, far, "implausible_speed", 0}, {2 * time.Second, 30, "", 0},
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var tr Track
			var lastOK Fix
			for i, s := range tt.steps {
				f := Fix{Point: north(base, s.m), At: t0.Add(s.at)}
				next, err := lim.Accept(tr, f, f.At.Add(-s.skew))
				if got := rejectionCode(t, err); got != s.want {
					t.Fatalf("step %d (%v, %.0f m) = %q (%v), want %q", i, s.at, s.m, got, err, s.want)
				}
				if next.Restarted != slices.Contains(tt.restarted, i) {
					t.Errorf("step %d restarted the track = %v", i, next.Restarted)
				}
				if err == nil {
					lastOK = f
				}
				if next.Last == nil || !next.Last.At.Equal(lastOK.At) || next.Last.Point != lastOK.Point {
					t.Fatalf("after step %d the track continues from %+v, want %+v", i, next.Last, lastOK)
				}
				tr = next
			}
		})
	}
}
