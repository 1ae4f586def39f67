package matching

import (
	"context"

	"github.com/google/uuid"

	"github.com/lastmile/lastmile/internal/rider"
)

// Request asks for a ride: it records the rider's request and offers it at
// once to every driver already approaching its station (see
// RequestCreated), so it is matched without waiting for their next fix.
// Its errors are those of rider.Service.Create.
func (s *Service) Request(ctx context.Context, riderID uuid.UUID, in rider.RequestInput) (rider.Request, error) {
	req, err := s.requests.Create(ctx, riderID, in)
	if err != nil {
		return rider.Request{}, err
	}
	s.RequestCreated(ctx, req)
	return req, nil
}
