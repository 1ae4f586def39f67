package trip

import (
	"testing"

	"github.com/google/uuid"

	"github.com/lastmile/lastmile/internal/httpx"
)

func TestSeesDriver(t *testing.T) {
	driver, rider, other := uuid.New(), uuid.New(), uuid.New()
	view := func(status Status, riders ...RiderStatus) View {
		v := View{DriverID: driver, Status: status}
		for _, rs := range riders {
			v.Riders = append(v.Riders, Rider{RiderID: rider, PartySize: 1, Status: rs})
		}
		return v
	}
	asRider := httpx.Principal{UserID: rider, Role: httpx.RoleRider}
	tests := []struct {
		name string
		v    View
		p    httpx.Principal
		want bool
	}{
		{"matched rider", view(Scheduled, RiderMatched), asRider, true},
		{"rider on board", view(Active, RiderPickedUp), asRider, true},
		{"rider who cancelled", view(Scheduled, RiderCancelled), asRider, false},
		{"rider marked no-show", view(Active, RiderNoShow), asRider, false},
		{"rider dropped off while the trip goes on", view(Active, RiderDroppedOff), asRider, false},
		{"rider released", view(Scheduled, RiderReleased), asRider, false},
		{"rider who cancelled and joined again", view(Scheduled, RiderCancelled, RiderMatched), asRider, true},
		{"another rider", view(Active, RiderPickedUp), httpx.Principal{UserID: other, Role: httpx.RoleRider}, false},
		{"the driver", view(Active, RiderPickedUp), httpx.Principal{UserID: driver, Role: httpx.RoleDriver}, true},
		{"an operator", view(Scheduled), httpx.Principal{UserID: other, Role: httpx.RoleOperator}, true},
		{"rider after the trip completed", view(Completed, RiderDroppedOff), asRider, false},
		{"operator after the trip was cancelled", view(Cancelled), httpx.Principal{UserID: other, Role: httpx.RoleOperator}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.v.SeesDriver(tt.p); got != tt.want {
				t.Errorf("SeesDriver = %t, want %t", got, tt.want)
			}
		})
	}
}
