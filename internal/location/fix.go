package location

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/lastmile/lastmile/internal/fault"
	"github.com/lastmile/lastmile/internal/geo"
)

// Fix is one GPS position of a driver.
type Fix struct {
	Point    geo.Point
	At       time.Time
	SpeedMps *float64 // as the device reports it, if it does
	Heading  *float64 // degrees clockwise from north, if reported
}

// Limits are the plausibility rules a fix must pass.
type Limits struct {
	// MaxSpeedMps is the highest believable speed between two fixes
	// (default 150 km/h).
	MaxSpeedMps float64
	// MaxFuture is how far ahead of the server's clock a fix may be
	// (default 30 s).
	MaxFuture time.Duration
	// MaxAge is how far behind the server's clock a fix may be: an older
	// one tells nothing about where the driver is (default 60 s, the
	// service sets --offline-after). Zero in a Limits not defaulted: no
	// bound.
	MaxAge time.Duration
	// NewTrackAfter: a fix taken this long after the track's last one
	// starts a new track, not compared with the old: the driver was
	// offline and may be anywhere now (default 60 s, the service sets
	// --offline-after).
	NewTrackAfter time.Duration
	// Reanchor is how many fixes in a row, each refused as too far from
	// the track's last one but plausible after the one before, move the
	// track to them: the last accepted fix was a glitch, or the driver is
	// really elsewhere (default 3).
	Reanchor int
}

func (l *Limits) defaults() {
	if l.MaxSpeedMps <= 0 {
		l.MaxSpeedMps = 150 / 3.6
	}
	if l.MaxFuture <= 0 {
		l.MaxFuture = 30 * time.Second
	}
	if l.MaxAge <= 0 {
		l.MaxAge = time.Minute
	}
	if l.NewTrackAfter <= 0 {
		l.NewTrackAfter = time.Minute
	}
	if l.Reanchor <= 0 {
		l.Reanchor = 3
	}
}

// Reasons a fix is refused; each is of kind Invalid with a code for the
// socket's error message.
var (
	ErrOutOfOrder = &Rejection{Code: "stale_fix", Message: "the fix is older than the latest one; ignored"}
)

// Rejection says why a fix was not applied.
type Rejection struct {
	Code    string
	Message string
}

func (r *Rejection) Error() string { return r.Message }

// ErrorCode is the code a client sees in the socket's error message.
func (r *Rejection) ErrorCode() string { return r.Code }

// Is makes a Rejection an error of kind Invalid.
func (r *Rejection) Is(target error) bool { return target == fault.Of(fault.Invalid) }

const codeImplausibleSpeed = "implausible_speed"

// jitterM is how far apart two fixes of a car that did not move may lie.
const jitterM = 50

func reject(code, format string, args ...any) *Rejection {
	return &Rejection{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Check tells whether f is plausible after prev (nil for a driver's first
// fix) at server time now. It returns nil or a *Rejection with the reason.
func (l Limits) Check(prev *Fix, f Fix, now time.Time) error {
	switch {
	case math.IsNaN(f.Point.Lat) || math.IsInf(f.Point.Lat, 0) || !geo.ValidLat(f.Point.Lat):
		return reject("invalid_lat", "lat must be a finite number from -90 to 90")
	case math.IsNaN(f.Point.Lng) || math.IsInf(f.Point.Lng, 0) || !geo.ValidLng(f.Point.Lng):
		return reject("invalid_lng", "lng must be a finite number from -180 to 180")
	case f.SpeedMps != nil && (math.IsNaN(*f.SpeedMps) || math.IsInf(*f.SpeedMps, 0) || *f.SpeedMps < 0):
		return reject("invalid_speed", "speed_mps must be a finite number of at least 0")
	case f.Heading != nil && (math.IsNaN(*f.Heading) || *f.Heading < 0 || *f.Heading >= 360):
		return reject("invalid_heading", "heading must be a number of degrees from 0 to below 360")
	case f.At.After(now.Add(l.MaxFuture)):
		return reject("future_fix", "at lies %s in the future; check the device clock", f.At.Sub(now).Round(time.Second))
	case l.MaxAge > 0 && f.At.Before(now.Add(-l.MaxAge)):
		return reject("old_fix", "at lies %s in the past, more than %s: send current positions, not old ones",
			now.Sub(f.At).Round(time.Second), l.MaxAge)
	}
	if prev == nil {
		return nil
	}
	if !f.At.After(prev.At) { // older, or a repeat
		return ErrOutOfOrder
	}
	dist := geo.DistanceM(prev.Point, f.Point)
	secs := f.At.Sub(prev.At).Seconds()
	// Allow GPS error: two fixes may be 50 m apart beyond the distance
	// driven, however little time lies between them (the error of each
	// fix does not shrink with the interval).
	if dist > jitterM+l.MaxSpeedMps*secs {
		return reject(codeImplausibleSpeed, "moving %.0f m in %.1f s is %.0f km/h, above the %.0f km/h limit",
			dist, secs, dist/secs*3.6, l.MaxSpeedMps*3.6)
	}
	return nil
}

// Track is what plausibility remembers of one driver's fixes.
type Track struct {
	// Last is the latest accepted fix, which the next is compared with;
	// nil before the first.
	Last *Fix
	// Suspects are the latest fixes refused because Last may be a glitch
	// (see Accept) that agree with each other (each plausible after the
	// one before), oldest first.
	Suspects []Fix
	// Restarted is set when the fix just accepted began the track anew
	// (after a silence, or re-anchored on suspects): it says nothing about
	// the driver's speed since Last.
	Restarted bool
	// Reanchored is set when it began anew on suspects: the track before
	// it cannot all be true (no car moves that fast), so where it placed
	// the driver is not to be believed either.
	Reanchored bool
}

// Accept checks f against t at server time now (see Check) and returns
// the track with f in it, or a *Rejection and the track as it should be
// remembered. Besides Check's rules:
//   - a fix more than NewTrackAfter after the last accepted one starts a
//     new track wherever it is: the driver was offline;
//   - a fix refused for implausible speed, or as older than a last fix
//     dated in the server's future, is remembered as a suspect; when
//     Reanchor suspects in a row agree with each other, the last of them
//     is accepted and the track continues from it, so one glitch accepted
//     (or a reconnect far away) does not refuse the driver for ever. A
//     single jump is still refused, and fixes back on the track clear the
//     suspects.
func (l Limits) Accept(t Track, f Fix, now time.Time) (Track, error) {
	prev := t.Last
	if prev != nil && f.At.Sub(prev.At) > l.NewTrackAfter {
		prev = nil
	}
	err := l.Check(prev, f, now)
	if err == nil {
		return Track{Last: &f, Restarted: prev == nil && t.Last != nil}, nil
	}
	// Suspects are fixes too far from Last, or older than a Last that lies
	// in the server's future (the device clock jumped ahead, within
	// MaxFuture): either way Last may be the glitch.
	var rej *Rejection
	glitch := errors.As(err, &rej) && (rej.Code == codeImplausibleSpeed || rej == ErrOutOfOrder && t.Last.At.After(now))
	if !glitch {
		return Track{Last: t.Last, Suspects: t.Suspects}, err
	}
	// Keep the suspects if f agrees with them (is plausible after the
	// latest); they are all younger than Last, so within NewTrackAfter.
	suspects := t.Suspects
	if n := len(suspects); n > 0 && l.Check(&suspects[n-1], f, now) != nil {
		suspects = nil
	}
	suspects = append(slices.Clone(suspects), f)
	if len(suspects) >= l.Reanchor {
		return Track{Last: &f, Restarted: true, Reanchored: true}, nil
	}
	return Track{Last: t.Last, Suspects: suspects}, err
}
