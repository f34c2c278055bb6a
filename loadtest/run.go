package loadtest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// runner holds the state of one Run.
type runner struct {
	cfg          Config
	gen          *generator
	cl           *client
	stats        [numKinds]*kindStats
	measureStart time.Time
	lastDone     atomic.Int64 // unix nanos of the last measured completion
}

// Run generates load as cfg describes and returns the report of the
// measured phase. It returns when the bound (Duration or Requests) is
// reached and every request it sent has finished, or when ctx is canceled
// (streams are interrupted, other requests finish within Config.Timeout);
// no goroutine it started outlives it. A run in which every request failed
// is not an error here; see Report.Successes.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid load config: %w", err)
	}
	gen, err := newGenerator(cfg)
	if err != nil {
		return nil, fmt.Errorf("building prompt generator: %w", err)
	}
	cl, err := newClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("building client for %s: %w", cfg.URL, err)
	}
	defer cl.hc.CloseIdleConnections()
	r := &runner{cfg: cfg, gen: gen, cl: cl}
	for k := range r.stats {
		r.stats[k] = newKindStats()
	}

	start := time.Now()
	r.measureStart = start.Add(cfg.Warmup)
	var sendEnd time.Time // zero: no time bound
	if cfg.Duration > 0 {
		sendEnd = r.measureStart.Add(cfg.Duration)
	}
	cl.windowEnd = sendEnd
	var sendWindow time.Duration
	if cfg.Mode == ModeOpen {
		sendWindow = r.openLoop(ctx, start, sendEnd)
	} else {
		r.closedLoop(ctx, sendEnd)
	}
	end := time.Now()
	if last := r.lastDone.Load(); last != 0 {
		end = time.Unix(0, last)
	}
	elapsed := max(end.Sub(r.measureStart), 0)
	window := elapsed
	if cfg.Duration > 0 {
		window = min(elapsed, cfg.Duration)
	}

	rep := &Report{
		Mode:           cfg.Mode,
		Scenario:       cfg.Scenario,
		URL:            cfg.URL,
		ElapsedSeconds: elapsed.Seconds(),
		WindowSeconds:  window.Seconds(),
		Scenarios:      map[string]*Stats{},
	}
	if cfg.Mode == ModeOpen {
		rep.Rate = cfg.Rate
	} else {
		rep.Concurrency = cfg.Concurrency
		sendWindow = elapsed
	}
	var used []*kindStats
	for k, st := range r.stats {
		if st.requests == 0 {
			continue
		}
		used = append(used, st)
		s, _ := buildStats([]*kindStats{st}, window)
		rep.Scenarios[kind(k).String()] = &s
	}
	var okInWindow int64
	rep.Stats, okInWindow = buildStats(used, window)
	if secs := sendWindow.Seconds(); secs > 0 {
		rep.SendRate = float64(rep.Requests) / secs
	}
	if secs := window.Seconds(); secs > 0 {
		rep.Throughput = float64(okInWindow) / secs
	}
	return rep, nil
}

// openLoop sends requests at their scheduled times: request i is due at
// start + i/Rate, however long earlier requests take. It never waits for a
// free worker; a request due while MaxInflight requests are outstanding is
// counted as dropped. It returns after every request it started has
// finished, with the length of the measured sending window.
func (r *runner) openLoop(ctx context.Context, start, sendEnd time.Time) time.Duration {
	var (
		wg       sync.WaitGroup
		inflight atomic.Int64
		measured int
		lastDue  time.Time
		maxIn    = int64(r.cfg.MaxInflight)
		interval = float64(time.Second) / r.cfg.Rate
	)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
loop:
	for i := 0; ; i++ {
		due := start.Add(time.Duration(float64(i) * interval))
		if !sendEnd.IsZero() && !due.Before(sendEnd) {
			break
		}
		isMeasured := !due.Before(r.measureStart)
		if isMeasured && r.cfg.Requests > 0 && measured >= r.cfg.Requests {
			break
		}
		if d := time.Until(due); d > 0 {
			timer.Reset(d)
			select {
			case <-ctx.Done():
				break loop
			case <-timer.C:
			}
		} else if ctx.Err() != nil {
			break
		}
		k, p, para, auth := r.gen.pick()
		if isMeasured {
			measured++
			lastDue = due
		}
		if inflight.Add(1) > maxIn {
			inflight.Add(-1)
			if isMeasured {
				r.stats[k].recordDropped()
			}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer inflight.Add(-1)
			r.one(ctx, k, p, para, auth, due, isMeasured)
		}()
	}
	wg.Wait()
	if measured == 0 {
		return 0
	}
	return lastDue.Sub(r.measureStart) + time.Duration(interval)
}

// closedLoop runs Concurrency users; each sends its next request when the
// previous one has finished, until the bound is reached.
func (r *runner) closedLoop(ctx context.Context, sendEnd time.Time) {
	var (
		wg      sync.WaitGroup
		claimed atomic.Int64
		limit   = int64(r.cfg.Requests)
	)
	for range r.cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				now := time.Now()
				if !sendEnd.IsZero() && !now.Before(sendEnd) {
					return
				}
				isMeasured := !now.Before(r.measureStart)
				if isMeasured && limit > 0 && claimed.Add(1) > limit {
					return
				}
				k, p, para, auth := r.gen.pick()
				r.one(ctx, k, p, para, auth, time.Time{}, isMeasured)
			}
		}()
	}
	wg.Wait()
}

// one builds and sends one request. A zero start means "measure from the
// actual send", as closed-loop users do.
func (r *runner) one(ctx context.Context, k kind, p promptSpec, para bool, auth []byte, start time.Time, isMeasured bool) {
	sc := scratchPool.Get().(*scratch)
	defer putScratch(sc)
	sc.body = r.gen.appendBody(sc.body[:0], k, p, para)
	if start.IsZero() {
		start = time.Now()
	}
	var st *kindStats
	if isMeasured {
		st = r.stats[k]
	}
	r.cl.do(ctx, k, sc.body, auth, start, sc, st)
	if isMeasured {
		now := time.Now().UnixNano()
		for {
			last := r.lastDone.Load()
			if now <= last || r.lastDone.CompareAndSwap(last, now) {
				break
			}
		}
	}
}
