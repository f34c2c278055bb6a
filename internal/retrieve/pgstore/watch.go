package pgstore

import (
	"context"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Watch back-off: the first retry after a lost connection waits
// minRetry, each failure doubles it up to maxRetry, and a connection
// that listens again resets it.
const (
	minRetry       = 100 * time.Millisecond
	maxRetry       = 5 * time.Second
	connectTimeout = 10 * time.Second
)

// Watch implements retrieve.ChangeFeed: it listens on Channel on a
// connection of its own, outside the pool, and calls notify for each
// notification of this collection, and once each time it starts
// listening (at the start, and after a reconnection, since changes made
// while it was not listening were not announced to it). It reconnects
// until ctx is done, logging each loss, and then returns ctx's error.
func (s *Store) Watch(ctx context.Context, notify func()) error {
	delay := minRetry
	for {
		err := s.listen(ctx, notify, &delay)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		s.db.log.Warn("pgstore: listening for changes failed; reconnecting",
			"collection", s.name, "server", s.db.server, "retry_in", delay, "err", scrub(err, s.db.pw))
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		delay = min(2*delay, maxRetry)
	}
}

// listen connects, listens and waits for notifications until the
// connection fails or ctx is done.
func (s *Store) listen(ctx context.Context, notify func(), delay *time.Duration) error {
	cc := s.db.cfg.ConnConfig.Copy()
	cc.RuntimeParams["application_name"] = listenerApp
	cctx, cancel := context.WithTimeout(ctx, connectTimeout)
	conn, err := pgx.ConnectConfig(cctx, cc)
	cancel()
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		conn.Close(cctx)
		cancel()
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+Channel); err != nil {
		return err
	}
	*delay = minRetry
	notify()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		if n.Channel == Channel && payloadCollection(n.Payload) == s.name {
			notify()
		}
	}
}

// payloadCollection returns the collection of a payload "<seq> <name>".
func payloadCollection(p string) string {
	_, name, ok := strings.Cut(p, " ")
	if !ok {
		return ""
	}
	return name
}
