package backends

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"switchyard/router"
)

func TestNextProbe(t *testing.T) {
	tests := []struct {
		interval time.Duration
		failed   int
		want     time.Duration
	}{
		{5 * time.Second, 0, 5 * time.Second},
		{5 * time.Second, 1, time.Second},
		{5 * time.Second, 2, 2 * time.Second},
		{5 * time.Second, 3, 4 * time.Second},
		{5 * time.Second, 4, 5 * time.Second},
		{5 * time.Second, 100, 5 * time.Second},
		{300 * time.Millisecond, 1, 300 * time.Millisecond},
		{300 * time.Millisecond, 5, 300 * time.Millisecond},
		{time.Hour, 1, time.Second},
		{time.Hour, 13, time.Hour},
	}
	for _, tc := range tests {
		if got := nextProbe(tc.interval, tc.failed); got != tc.want {
			t.Errorf("nextProbe(%v, %d) = %v, want %v", tc.interval, tc.failed, got, tc.want)
		}
	}
}

// TestFailedFirstProbeRetriedSoon: a backend that fails its first probe (at
// start-up, still loading) is probed again after about a second, not after
// the whole interval.
func TestFailedFirstProbeRetriedSoon(t *testing.T) {
	var probes atomic.Int64
	url, _ := rawServer(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for readRequest(br) == nil {
			if probes.Add(1) == 1 {
				io.WriteString(c, "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
			} else {
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
			}
		}
	})
	r, err := router.New(router.Spec{Upstreams: []router.UpstreamSpec{{Name: "test"}}})
	if err != nil {
		t.Fatal(err)
	}
	u := r.Upstream("test")
	c := newClient(t, url, Options{})
	h := StartHealthChecks(slog.New(slog.NewTextHandler(io.Discard, nil)),
		[]Check{{Client: c, Upstream: u, Path: "/health", Interval: time.Hour, Timeout: time.Second}})
	defer h.Close()
	wait := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(3 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s (probes: %d)", what, probes.Load())
			}
		}
	}
	wait("the first probe to fail", func() bool { return probes.Load() >= 1 && !u.Healthy(time.Now()) })
	start := time.Now()
	wait("the second probe to pass", func() bool { return u.Healthy(time.Now()) })
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("back in rotation after %v; want about 1s", d)
	}
	if n := probes.Load(); n != 2 {
		t.Errorf("%d probes; want 2 (then the next after the 1h interval)", n)
	}
}
