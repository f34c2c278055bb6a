// Package spend keeps the spend of keys and tenants per day and month: an
// in-memory ledger that the hot path reads and adds to without I/O, flushed
// to the durable store in the background, which returns the totals of all
// replicas.
package spend

import (
	"context"
	"hash/maphash"
	"log/slog"
	"sync"
	"time"

	"switchyard/internal/store"
)

// Period is a budget period, in UTC.
type Period uint8

const (
	Day Period = iota
	Month
)

// Scope is what spend is kept for.
type Scope uint8

const (
	Key Scope = iota
	Tenant
)

// Options configure a Ledger.
type Options struct {
	Store store.Store
	// FlushInterval is how often local spend goes to the store (default 1s).
	FlushInterval time.Duration
	// RefreshInterval is how often the totals of the current periods are
	// read back, to see other replicas' spend (default 5s).
	RefreshInterval time.Duration
	Log             *slog.Logger
}

// Ledger is the spend of every key and tenant in the current periods.
type Ledger struct {
	o      Options
	seed   maphash.Seed
	shards [16]ledgerShard

	flushMu sync.Mutex // one flush or refresh at a time
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
	failing bool
}

type ledgerShard struct {
	mu sync.Mutex
	m  map[entryKey]*entry
}

type entryKey struct {
	scope  Scope
	period Period
	start  int64 // unix seconds of the period's start
	id     string
}

// entry is one scope's spend in one period: the store's total as last
// read, and this replica's spend not yet flushed.
type entry struct {
	known                             int64
	pending, pendReq, pendIn, pendOut int64
}

// Start is the start of the period p containing t, in UTC.
func (p Period) Start(t time.Time) time.Time {
	t = t.UTC()
	if p == Day {
		return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	}
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
}

// String is the period's name in the store: "day" or "month".
func (p Period) String() string {
	if p == Day {
		return "day"
	}
	return "month"
}

// String is the scope's name in the store: "key" or "tenant".
func (s Scope) String() string {
	if s == Tenant {
		return "tenant"
	}
	return "key"
}

func parseScope(s string) (Scope, bool) {
	switch s {
	case "key":
		return Key, true
	case "tenant":
		return Tenant, true
	}
	return 0, false
}

func parsePeriod(s string) (Period, bool) {
	switch s {
	case "day":
		return Day, true
	case "month":
		return Month, true
	}
	return 0, false
}

// New loads the current periods' totals and starts the flusher, which runs
// until Close.
func New(ctx context.Context, o Options) (*Ledger, error) {
	if o.FlushInterval <= 0 {
		o.FlushInterval = time.Second
	}
	if o.RefreshInterval <= 0 {
		o.RefreshInterval = 5 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	l := &Ledger{o: o, seed: maphash.MakeSeed(), stop: make(chan struct{}), done: make(chan struct{})}
	for i := range l.shards {
		l.shards[i].m = map[entryKey]*entry{}
	}
	if err := l.refresh(ctx, time.Now()); err != nil {
		return nil, err
	}
	go l.run()
	return l, nil
}

func (l *Ledger) shard(k *entryKey) *ledgerShard {
	return &l.shards[maphash.String(l.seed, k.id)&15]
}

// Spent is the scope's spend in the period containing now, in billionths of
// a US dollar, this replica's unflushed spend included. No I/O, no allocation.
func (l *Ledger) Spent(s Scope, id string, p Period, now time.Time) int64 {
	k := entryKey{scope: s, period: p, start: p.Start(now).Unix(), id: id}
	sh := l.shard(&k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if e := sh.m[k]; e != nil {
		return e.known + e.pending
	}
	return 0
}

// Add records one request's cost and tokens for the scope, in both periods.
func (l *Ledger) Add(s Scope, id string, now time.Time, nanoUSD, inputTokens, outputTokens int64) {
	for _, p := range [...]Period{Day, Month} {
		k := entryKey{scope: s, period: p, start: p.Start(now).Unix(), id: id}
		sh := l.shard(&k)
		sh.mu.Lock()
		e := sh.m[k]
		if e == nil {
			e = &entry{}
			sh.m[k] = e
		}
		e.pending += nanoUSD
		e.pendReq++
		e.pendIn += inputTokens
		e.pendOut += outputTokens
		sh.mu.Unlock()
	}
}

func (l *Ledger) run() {
	defer close(l.done)
	flush := time.NewTicker(l.o.FlushInterval)
	defer flush.Stop()
	refresh := time.NewTicker(l.o.RefreshInterval)
	defer refresh.Stop()
	for {
		var err error
		select {
		case <-l.stop:
			return
		case <-flush.C:
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err = l.Flush(ctx)
			cancel()
		case <-refresh.C:
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err = l.refresh(ctx, time.Now())
			cancel()
		}
		switch {
		case err != nil && !l.failing:
			l.o.Log.Error("spend: the store did not answer; spend is kept in memory and sent when it does", "error", err.Error())
			l.failing = true
		case err == nil && l.failing:
			l.o.Log.Info("spend: the store answers again")
			l.failing = false
		}
	}
}

type pendingDelta struct {
	e *entry
	d store.SpendDelta
}

// Flush sends pending spend to the store now.
func (l *Ledger) Flush(ctx context.Context) error {
	l.flushMu.Lock()
	defer l.flushMu.Unlock()
	var batch []pendingDelta
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		for k, e := range sh.m {
			if e.pending == 0 && e.pendReq == 0 {
				continue
			}
			batch = append(batch, pendingDelta{e: e, d: store.SpendDelta{Scope: k.scope.String(), ID: k.id, Period: k.period.String(),
				Start: time.Unix(k.start, 0).UTC(), NanoUSD: e.pending, Requests: e.pendReq, InputTokens: e.pendIn, OutputTokens: e.pendOut}})
			e.pending, e.pendReq, e.pendIn, e.pendOut = 0, 0, 0, 0
		}
		sh.mu.Unlock()
	}
	if len(batch) == 0 {
		return nil
	}
	deltas := make([]store.SpendDelta, len(batch))
	for i := range batch {
		deltas[i] = batch[i].d
	}
	rows, err := l.o.Store.AddSpend(ctx, deltas)
	for i, b := range batch {
		sh := l.shard(&entryKey{id: b.d.ID})
		sh.mu.Lock()
		if err != nil { // keep it for the next flush
			b.e.pending += b.d.NanoUSD
			b.e.pendReq += b.d.Requests
			b.e.pendIn += b.d.InputTokens
			b.e.pendOut += b.d.OutputTokens
		} else {
			b.e.known = rows[i].NanoUSD
		}
		sh.mu.Unlock()
	}
	return err
}

// refresh reads the current periods' totals, other replicas' spend
// included, and drops past periods' entries that have nothing pending.
func (l *Ledger) refresh(ctx context.Context, now time.Time) error {
	l.flushMu.Lock()
	defer l.flushMu.Unlock()
	since := Month.Start(now)
	rows, err := l.o.Store.ListSpend(ctx, store.SpendFilter{Since: since})
	if err != nil {
		return err
	}
	for _, r := range rows {
		s, ok1 := parseScope(r.Scope)
		p, ok2 := parsePeriod(r.Period)
		if !ok1 || !ok2 || !r.Start.Equal(p.Start(now)) {
			continue
		}
		k := entryKey{scope: s, period: p, start: r.Start.Unix(), id: r.ID}
		sh := l.shard(&k)
		sh.mu.Lock()
		e := sh.m[k]
		if e == nil {
			e = &entry{}
			sh.m[k] = e
		}
		e.known = r.NanoUSD
		sh.mu.Unlock()
	}
	day, month := Day.Start(now).Unix(), Month.Start(now).Unix()
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		for k, e := range sh.m {
			cur := (k.period == Day && k.start == day) || (k.period == Month && k.start == month)
			if !cur && e.pending == 0 && e.pendReq == 0 {
				delete(sh.m, k)
			}
		}
		sh.mu.Unlock()
	}
	return nil
}

// Close flushes and stops the background work.
func (l *Ledger) Close() error {
	l.once.Do(func() { close(l.stop) })
	<-l.done
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return l.Flush(ctx)
}
