// Package geo holds pure functions on WGS 84 coordinates: validity,
// great-circle distances and bearings, and a spatial grid for nearby search.
package geo

import "math"

// EarthRadiusM is the mean Earth radius used for great-circle distances.
const EarthRadiusM = 6371008.8

// Point is a WGS 84 position in degrees.
type Point struct {
	Lat float64 `json:"lat"`
	Lng float64 `json:"lng"`
}

// ValidLat reports whether lat is a finite latitude in [-90, 90].
func ValidLat(lat float64) bool { return !math.IsNaN(lat) && lat >= -90 && lat <= 90 }

// ValidLng reports whether lng is a finite longitude in [-180, 180].
func ValidLng(lng float64) bool { return !math.IsNaN(lng) && lng >= -180 && lng <= 180 }

// Valid reports whether p is a finite, in-range coordinate.
func (p Point) Valid() bool { return ValidLat(p.Lat) && ValidLng(p.Lng) }

func rad(deg float64) float64 { return deg * math.Pi / 180 }

// DistanceM is the great-circle (haversine) distance between a and b in metres.
func DistanceM(a, b Point) float64 {
	dLat := rad(b.Lat - a.Lat)
	dLng := rad(b.Lng - a.Lng)
	s := math.Sin(dLat/2)*math.Sin(dLat/2) +
		math.Cos(rad(a.Lat))*math.Cos(rad(b.Lat))*math.Sin(dLng/2)*math.Sin(dLng/2)
	return 2 * EarthRadiusM * math.Asin(math.Min(1, math.Sqrt(s)))
}

// BearingDeg is the initial bearing from a to b, in degrees clockwise from north [0, 360).
func BearingDeg(a, b Point) float64 {
	φ1, φ2 := rad(a.Lat), rad(b.Lat)
	Δλ := rad(b.Lng - a.Lng)
	y := math.Sin(Δλ) * math.Cos(φ2)
	x := math.Cos(φ1)*math.Sin(φ2) - math.Sin(φ1)*math.Cos(φ2)*math.Cos(Δλ)
	θ := math.Atan2(y, x) * 180 / math.Pi
	return math.Mod(θ+360, 360)
}
