package matching

import (
	"slices"
	"testing"
)

func TestFit(t *testing.T) {
	ps := func(sizes ...int) []Party {
		out := make([]Party, len(sizes))
		for i, s := range sizes {
			out[i] = Party{Index: i, Size: s}
		}
		return out
	}
	tests := []struct {
		name    string
		parties []Party
		free    int
		want    []int
	}{
		{"nobody waiting", nil, 3, nil},
		{"no seats", ps(1, 1), 0, nil},
		{"oldest first until full", ps(1, 1, 1, 1), 3, []int{0, 1, 2}},
		{"exact fit", ps(2, 1), 3, []int{0, 1}},
		{"too big is skipped, smaller later ones taken", ps(1, 3, 1, 1), 3, []int{0, 2, 3}},
		{"party is never split", ps(4), 3, nil},
		{"big party first when it fits", ps(3, 1), 3, []int{0}},
		{"skip then fill the last seat", ps(2, 2, 1), 3, []int{0, 2}},
		{"bad sizes are never taken", ps(0, -1, 1), 1, []int{2}},
		{"eight seats", ps(4, 4, 4, 1), 8, []int{0, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Fit(tt.parties, tt.free)
			if !slices.Equal(got, tt.want) {
				t.Fatalf("Fit(%v, %d) = %v, want %v", tt.parties, tt.free, got, tt.want)
			}
			used := 0
			for _, i := range got {
				used += tt.parties[i].Size
			}
			if used > tt.free {
				t.Fatalf("Fit sold %d seats of %d", used, tt.free)
			}
		})
	}
}
