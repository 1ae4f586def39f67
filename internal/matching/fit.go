package matching

// Party is a waiting request as the seat-fitting rule sees it.
type Party struct {
	Index int // position in the candidate list (oldest arrival first)
	Size  int
}

// Fit chooses, from parties ordered oldest arrival first, those that go
// into free seats: each party whole or not at all, oldest first; a party
// too big for the seats left is skipped while later, smaller ones that fit
// are still taken. It returns the chosen indexes, in order.
func Fit(parties []Party, free int) []int {
	var chosen []int
	for _, p := range parties {
		if free == 0 {
			break
		}
		if p.Size >= 1 && p.Size <= free {
			chosen = append(chosen, p.Index)
			free -= p.Size
		}
	}
	return chosen
}
