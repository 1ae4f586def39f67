package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// listen keeps one dedicated connection listening on the notify channels,
// opening it again with backoff whenever it is lost, until ctx is
// cancelled. Each time it starts listening it queues every local socket for
// a load, since notifications sent while it was away are lost (the events
// are not).
func (s *Service) listen(ctx context.Context) error {
	const minBackoff, maxBackoff = 100 * time.Millisecond, 5 * time.Second
	backoff := minBackoff
	for {
		started := time.Now()
		err := s.listenOnce(ctx)
		if ctx.Err() != nil {
			return nil
		}
		s.m.reconnects.Inc()
		if time.Since(started) > time.Minute {
			backoff = minBackoff
		}
		s.logger.Warn("event listener lost its connection; reconnecting", "err", err, "backoff", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

func (s *Service) listenOnce(ctx context.Context) error {
	cfg := s.pool.Config().ConnConfig.Copy()
	cfg.RuntimeParams["application_name"] = ListenerName
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = conn.Close(closeCtx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+eventsChannel+"; LISTEN "+liveChannel+"; LISTEN "+controlChannel); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	s.hub.markAllDirty()
	s.listens.Add(1)
	select {
	case s.listened <- struct{}{}:
	default:
	}
	for {
		// Wake up now and then to check that the connection still works: a
		// connection whose peer vanished without a word would wait forever.
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, context.DeadlineExceeded) && !conn.IsClosed() {
				pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				err = conn.Ping(pctx)
				cancel()
				if err == nil {
					continue
				}
			}
			return fmt.Errorf("wait for notification: %w", err)
		}
		s.dispatch(n)
	}
}

// dispatch acts on one notification. It only touches memory, so the
// listener is never held up by a slow socket or query.
func (s *Service) dispatch(n *pgconn.Notification) {
	switch n.Channel {
	case eventsChannel:
		user, seqText, _ := strings.Cut(n.Payload, ":")
		id, err := uuid.Parse(user)
		seq, err2 := strconv.ParseInt(seqText, 10, 64)
		if err != nil || err2 != nil {
			s.logger.Warn("bad event notification", "payload", n.Payload)
			return
		}
		s.hub.eventExists(id, seq)
	case liveChannel:
		var p livePayload
		if err := json.Unmarshal([]byte(n.Payload), &p); err != nil {
			s.logger.Warn("bad live notification", "err", err)
			return
		}
		if p.Replica == s.replica {
			return // delivered locally by Publish already
		}
		s.hub.publish(p.Users, p.Msg)
	case controlChannel:
		verb, arg, _ := strings.Cut(n.Payload, " ")
		id, err := uuid.Parse(arg)
		if verb != "disconnect" || err != nil {
			s.logger.Warn("bad control notification", "payload", n.Payload)
			return
		}
		s.hub.closeUser(id, closeSignedOut)
	}
}
