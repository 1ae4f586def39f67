package main

import (
	"math"
	"testing"
)

// TestPathsEnterTheRadiusButNeverPassTheStation checks the load drivers'
// paths: every driver enters its station's 800 m trigger radius, never
// comes within LastMile's 100 m "reached" distance (which would take the
// station off its route), and never moves faster than LastMile's
// plausibility limit allows.
func TestPathsEnterTheRadiusButNeverPassTheStation(t *testing.T) {
	stations := []station{{ID: "a", Lat: 12.9, Lng: 77.6, RadiusM: 800}, {ID: "b", Lat: 12.85, Lng: 77.66, RadiusM: 800}}
	for i := range 500 {
		p := pathOf(i, stations)
		st := stations[i%len(stations)]
		minD, inside := math.Inf(1), false
		lat0, lng0 := p.at(0)
		for step := 1; step <= 2000; step++ { // two round trips of the 4 km line, in 1 s steps
			lat, lng := p.at(float64(step))
			d := haversineM(lat, lng, st.Lat, st.Lng)
			minD = math.Min(minD, d)
			inside = inside || d < st.RadiusM
			if v := haversineM(lat0, lng0, lat, lng); v > speedMps+0.5 {
				t.Fatalf("driver %d moved %.1f m in 1 s at step %d", i, v, step)
			}
			lat0, lng0 = lat, lng
		}
		if !inside || minD < 140 {
			t.Errorf("driver %d: inside the radius %v, closest %.0f m; want inside, never within 140 m", i, inside, minD)
		}
	}
}
