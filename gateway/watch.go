package gateway

import (
	"sync"
	"syscall"
	"time"

	"switchyard/internal/netutil"
)

// disconnectEvery is how often the watcher looks at the connections of
// clients whose requests wait on an upstream.
const disconnectEvery = 100 * time.Millisecond

// watcher notices clients that close their connection while their request
// waits on an upstream (a non-streamed completion, or a stream before its
// first byte) and cancels the upstream call, so the model server stops
// generating for nobody. Once a stream flows, a failed write tells the same
// sooner. One goroutine, owned by the Server, scans the waiting exchanges.
type watcher struct {
	mu sync.Mutex
	xs map[*Exchange]struct{}
}

// watch adds x to (on) or removes it from the watched exchanges. Only
// exchanges on real sockets are watched.
func (x *Exchange) watch(on bool) {
	if x.client == nil {
		return
	}
	w := &x.srv.watcher
	w.mu.Lock()
	if on {
		w.xs[x] = struct{}{}
	} else {
		delete(w.xs, x)
	}
	w.mu.Unlock()
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
		w := &s.watcher
		w.mu.Lock()
		// The lock is held across the peeks (non-blocking syscalls) so that
		// an exchange cannot leave, and its connection be reused, meanwhile.
		for x := range w.xs {
			if !netutil.Alive(x.client) {
				x.call.Cancel()
				delete(w.xs, x)
			}
		}
		w.mu.Unlock()
	}
}
