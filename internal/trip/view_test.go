package trip

import (
	"testing"

	"github.com/google/uuid"

	"github.com/lastmile/lastmile/internal/identity"
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
	asRider := identity.Principal{UserID: rider, Role: identity.RoleRider}
	tests := []struct {
		name string
		v    View
		p    identity.Principal
		want bool
	}{
		{"matched rider", view(Scheduled, RiderMatched), asRider, true},
		{"rider on board", view(Active, RiderPickedUp), asRider, true},
		{"rider who cancelled", view(Scheduled, RiderCancelled), asRider, false},
		{"rider marked no-show", view(Active, RiderNoShow), asRider, false},
		{"rider dropped off while the trip goes on", view(Active, RiderDroppedOff), asRider, false},
		{"rider released", view(Scheduled, RiderReleased), asRider, false},
		{"rider who cancelled and joined again", view(Scheduled, RiderCancelled, RiderMatched), asRider, true},
		{"another rider", view(Active, RiderPickedUp), identity.Principal{UserID: other, Role: identity.RoleRider}, false},
		{"the driver", view(Active, RiderPickedUp), identity.Principal{UserID: driver, Role: identity.RoleDriver}, true},
		{"an operator", view(Scheduled), identity.Principal{UserID: other, Role: identity.RoleOperator}, true},
		{"rider after the trip completed", view(Completed, RiderDroppedOff), asRider, false},
		{"operator after the trip was cancelled", view(Cancelled), identity.Principal{UserID: other, Role: identity.RoleOperator}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.v.SeesDriver(tt.p); got != tt.want {
				t.Errorf("SeesDriver = %t, want %t", got, tt.want)
			}
		})
	}
}
