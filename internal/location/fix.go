package location

import (
	"fmt"
	"math"
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
}

func (l *Limits) defaults() {
	if l.MaxSpeedMps <= 0 {
		l.MaxSpeedMps = 150 / 3.6
	}
	if l.MaxFuture <= 0 {
		l.MaxFuture = 30 * time.Second
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
	}
	if prev == nil {
		return nil
	}
	if !f.At.After(prev.At) { // older, or a repeat
		return ErrOutOfOrder
	}
	dist := geo.DistanceM(prev.Point, f.Point)
	secs := f.At.Sub(prev.At).Seconds()
	// Allow GPS jitter: up to 50 m of movement needs no time at all.
	if dist > 50 && dist/secs > l.MaxSpeedMps {
		return reject("implausible_speed", "moving %.0f m in %.1f s is %.0f km/h, above the %.0f km/h limit",
			dist, secs, dist/secs*3.6, l.MaxSpeedMps*3.6)
	}
	return nil
}
