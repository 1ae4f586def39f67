package trip

import (
	"testing"

	"github.com/google/uuid"
)

// A rider who cancelled may request again and be matched to the same
// driver at the same station: the new request joins the same trip, and the
// driver's moves apply to it, not to the cancelled one.
func TestRiderRejoinsAfterCancelling(t *testing.T) {
	tr := step(t)(arrived(t).CancelRider(riderB, t0))
	again := Rider{RiderID: riderB, RequestID: uuid.MustParse("b2000000-0000-4000-8000-00000000000b"), PartySize: 1}
	tr = step(t)(tr.Join(again, t0))
	if _, err := tr.Join(again, t0); err == nil {
		t.Fatalf("the same rider joined twice while holding seats")
	}
	tr = step(t)(tr.PickUp(riderB, t0))
	var statuses []RiderStatus
	for _, r := range tr.Riders {
		if r.RiderID == riderB {
			statuses = append(statuses, r.Status)
		}
	}
	if len(statuses) != 2 || statuses[0] != RiderCancelled || statuses[1] != RiderPickedUp {
		t.Fatalf("rider B's entries = %v, want [cancelled picked_up]", statuses)
	}
}
