package backends

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"switchyard/router"
)

// HealthChecker polls each upstream's health path and reports the result to
// its router.Upstream. It owns one goroutine per checked upstream, stopped by
// Close.
type HealthChecker struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Check describes one active health check.
type Check struct {
	Client   *Client
	Upstream *router.Upstream
	Path     string
	Interval time.Duration
	Timeout  time.Duration
}

// StartHealthChecks starts the checks; an empty list starts nothing.
func StartHealthChecks(log *slog.Logger, checks []Check) *HealthChecker {
	ctx, cancel := context.WithCancel(context.Background())
	h := &HealthChecker{cancel: cancel}
	for _, ch := range checks {
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			h.run(ctx, log, ch)
		}()
	}
	return h
}

// probeRetryMin is the first wait after a failed probe.
const probeRetryMin = time.Second

// nextProbe is the wait before the next probe after failed probes in a row
// (0 after a success): the interval after a success; after failures,
// min(interval, 1s), doubling with each further failure up to the interval.
// So a backend that fails its first probe at start-up, because it is still
// loading, is back soon after it is ready, not a whole interval later.
func nextProbe(interval time.Duration, failed int) time.Duration {
	if failed == 0 {
		return interval
	}
	d := min(interval, probeRetryMin)
	for i := 1; i < failed && d < interval; i++ {
		d *= 2
	}
	return min(d, interval)
}

func (h *HealthChecker) run(ctx context.Context, log *slog.Logger, ch Check) {
	t := time.NewTimer(0)
	defer t.Stop()
	last := true
	failed := 0 // probes failed in a row
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ok, why := ch.Client.probe(ch.Path, ch.Timeout)
		ch.Upstream.SetActiveHealth(ok)
		if ok != last {
			if ok {
				log.Info("backend healthy again", "backend", ch.Client.Name())
			} else {
				log.Warn("backend failed its health check", "backend", ch.Client.Name(), "error", why)
			}
			last = ok
		}
		if ok {
			failed = 0
		} else {
			failed++
		}
		t.Reset(nextProbe(ch.Interval, failed))
	}
}

// Close stops every check and waits for them to return.
func (h *HealthChecker) Close() {
	if h == nil {
		return
	}
	h.cancel()
	h.wg.Wait()
}

// probe sends one GET of path with its own timeout.
func (c *Client) probe(path string, timeout time.Duration) (bool, string) {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	c.PrepareRequest(req, fasthttp.MethodGet, path)
	var k Call
	t := time.AfterFunc(timeout, k.Cancel)
	defer t.Stop()
	if err := c.Do(&k, req, resp); err != nil {
		return false, err.Error()
	}
	if sc := resp.StatusCode(); sc < 200 || sc > 299 {
		return false, fmt.Sprintf("status %d", sc)
	}
	return true, ""
}
