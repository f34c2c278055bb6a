package gateway

import (
	"sync"
	"syscall"
	"time"

	"switchyard/internal/netutil"
)

// disconnectEvery is how often the watcher looks at the connections of
// clients whose exchanges are in progress.
const disconnectEvery = 100 * time.Millisecond

// watchShards spreads the watched exchanges over this many sets, each with
// its own lock, so that thousands of waiting requests do not queue on one
// mutex to start or end.
const watchShards = 16

// watcher notices clients that close their connection while their exchange
// is in progress (waiting on a stage, on an upstream, or between the events
// of a stream) and cancels the exchange's context, which cancels its
// upstream call: the model server stops generating for nobody, and a stage
// waiting on the context returns. One goroutine, owned by the Server, scans
// the watched exchanges.
type watcher struct {
	shards [watchShards]watchShard
}

type watchShard struct {
	mu sync.Mutex
	xs map[*Exchange]struct{}
}

func (w *watcher) init() {
	for i := range w.shards {
		w.shards[i].xs = map[*Exchange]struct{}{}
	}
}

// watch adds x to (on) or removes it from the watched exchanges. Only
// exchanges on real sockets are watched. Once watch(false) returned, the
// watcher no longer looks at x's connection.
func (x *Exchange) watch(on bool) {
	if x.client == nil || x.watched == on {
		return
	}
	x.watched = on
	sh := &x.srv.watcher.shards[x.watchShard]
	sh.mu.Lock()
	if on {
		sh.xs[x] = struct{}{}
	} else {
		delete(sh.xs, x)
	}
	sh.mu.Unlock()
}

// watchable reports whether c's socket can be peeked at.
func watchable(c any) bool {
	_, ok := c.(syscall.Conn)
	return ok
}

// runWatcher scans the watched exchanges until the server shuts down.
func (s *Server) runWatcher() {
	defer s.wg.Done()
	t := time.NewTicker(disconnectEvery)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		for i := range s.watcher.shards {
			sh := &s.watcher.shards[i]
			sh.mu.Lock()
			// The shard's lock is held across its peeks (non-blocking
			// syscalls) so that an exchange cannot leave, and its
			// connection be reused, meanwhile.
			for x := range sh.xs {
				if !netutil.Alive(x.client) {
					delete(sh.xs, x)
					x.ctx.cancel(ErrClientGone)
				}
			}
			sh.mu.Unlock()
		}
	}
}
