package geo

import (
	"math"
	"testing"
)

func TestDistanceM(t *testing.T) {
	tests := []struct {
		name string
		a, b Point
		want float64 // metres
		tol  float64
	}{
		{"same point", Point{12.9, 77.6}, Point{12.9, 77.6}, 0, 1e-9},
		{"one degree of latitude", Point{0, 0}, Point{1, 0}, 111195, 1},
		{"one degree of longitude at the equator", Point{0, 0}, Point{0, 1}, 111195, 1},
		{"silk board to electronic city", Point{12.9177, 77.6238}, Point{12.8456, 77.66}, 8923, 15},
		{"antipodes", Point{0, 0}, Point{0, 180}, math.Pi * EarthRadiusM, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := DistanceM(tt.a, tt.b)
			if math.Abs(got-tt.want) > tt.tol {
				t.Errorf("DistanceM(%v, %v) = %.1f, want %.1f ± %.1f", tt.a, tt.b, got, tt.want, tt.tol)
			}
			if back := DistanceM(tt.b, tt.a); math.Abs(back-got) > 1e-6 {
				t.Errorf("distance is not symmetric: %.3f vs %.3f", got, back)
			}
		})
	}
}

func TestBearingDeg(t *testing.T) {
	tests := []struct {
		name string
		b    Point
		want float64
	}{
		{"north", Point{1, 0}, 0},
		{"east", Point{0, 1}, 90},
		{"south", Point{-1, 0}, 180},
		{"west", Point{0, -1}, 270},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := BearingDeg(Point{0, 0}, tt.b); math.Abs(got-tt.want) > 1e-6 {
				t.Errorf("BearingDeg = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestValid(t *testing.T) {
	tests := []struct {
		p    Point
		want bool
	}{
		{Point{12.9, 77.6}, true},
		{Point{90, 180}, true},
		{Point{-90, -180}, true},
		{Point{90.0001, 0}, false},
		{Point{0, -180.5}, false},
		{Point{math.NaN(), 0}, false},
		{Point{0, math.Inf(1)}, false},
	}
	for _, tt := range tests {
		if got := tt.p.Valid(); got != tt.want {
			t.Errorf("%v.Valid() = %v, want %v", tt.p, got, tt.want)
		}
	}
}
