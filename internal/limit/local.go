package limit

import (
	"context"
	"hash/maphash"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

var _ Limiter = (*Local)(nil)

const (
	nShards           = 64
	defaultMaxBuckets = 100000
)

// Local keeps limits in process: per bucket name, a request and a token
// bucket (golang.org/x/time/rate) and a count of requests in flight, in a
// bounded, sharded map. It is safe for concurrent use; a decision does not
// allocate once its buckets exist.
type Local struct {
	seed     maphash.Seed
	shards   [nShards]shard
	perShard int

	admitted, refused atomic.Int64
}

type shard struct {
	mu sync.RWMutex
	m  map[string]*bucket
}

// bucket is one name's state.
type bucket struct {
	mu       sync.Mutex // guards lim and the limiters' settings
	lim      Limit
	req, tok *rate.Limiter // nil when the limit has no RPM / TPM
	inflight atomic.Int64
	used     atomic.Int64 // unix nanoseconds of the last admission, for eviction
}

// NewLocal makes a Local limiter.
func NewLocal(o LocalOptions) *Local {
	max := o.MaxBuckets
	if max <= 0 {
		max = defaultMaxBuckets
	}
	l := &Local{seed: maphash.MakeSeed(), perShard: max/nShards + 1}
	for i := range l.shards {
		l.shards[i].m = map[string]*bucket{}
	}
	return l
}

func perSecond(perMinute int64) rate.Limit { return rate.Limit(float64(perMinute) / 60) }

func burstOf(limit, burst int64) int {
	if burst <= 0 || burst > limit {
		burst = limit
	}
	if burst > math.MaxInt32 {
		burst = math.MaxInt32
	}
	return int(burst)
}

// configure makes b's limiters fit lim (a new bucket, or a reload that
// changed the limit); b.mu is held.
func (b *bucket) configure(lim Limit, now time.Time) {
	if lim.RPM > 0 {
		if b.req == nil {
			b.req = rate.NewLimiter(perSecond(lim.RPM), burstOf(lim.RPM, lim.RequestBurst))
		} else {
			b.req.SetLimitAt(now, perSecond(lim.RPM))
			b.req.SetBurstAt(now, burstOf(lim.RPM, lim.RequestBurst))
		}
	} else {
		b.req = nil
	}
	if lim.TPM > 0 {
		if b.tok == nil {
			b.tok = rate.NewLimiter(perSecond(lim.TPM), burstOf(lim.TPM, lim.TokenBurst))
		} else {
			b.tok.SetLimitAt(now, perSecond(lim.TPM))
			b.tok.SetBurstAt(now, burstOf(lim.TPM, lim.TokenBurst))
		}
	} else {
		b.tok = nil
	}
	b.lim = lim
}

func (l *Local) shardOf(name string) *shard {
	return &l.shards[maphash.String(l.seed, name)&(nShards-1)]
}

// lookup returns the bucket of name, or nil.
func (l *Local) lookup(name string) *bucket {
	s := l.shardOf(name)
	s.mu.RLock()
	b := s.m[name]
	s.mu.RUnlock()
	return b
}

// get returns the bucket of c, made or reconfigured as needed.
func (l *Local) get(c *Check, now time.Time) *bucket {
	s := l.shardOf(c.Name)
	s.mu.RLock()
	b := s.m[c.Name]
	s.mu.RUnlock()
	if b == nil {
		s.mu.Lock()
		if b = s.m[c.Name]; b == nil {
			if len(s.m) >= l.perShard {
				s.evict(now)
			}
			b = &bucket{}
			b.configure(c.Limit, now)
			s.m[c.Name] = b
		}
		s.mu.Unlock()
	}
	b.mu.Lock()
	if b.lim != c.Limit {
		b.configure(c.Limit, now)
	}
	b.mu.Unlock()
	return b
}

// evict drops idle buckets (full again, nothing in flight) of a full
// shard; when none is idle, the least recently used one without requests
// in flight. s.mu is held.
func (s *shard) evict(now time.Time) {
	var oldest string
	oldestUse := int64(math.MaxInt64)
	dropped := 0
	for name, b := range s.m {
		if b.inflight.Load() > 0 {
			continue
		}
		if b.full(now) {
			delete(s.m, name)
			dropped++
			continue
		}
		if u := b.used.Load(); u < oldestUse {
			oldest, oldestUse = name, u
		}
	}
	if dropped == 0 && oldest != "" {
		delete(s.m, oldest)
	}
}

func (b *bucket) full(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.req != nil && b.req.TokensAt(now) < float64(b.req.Burst()) {
		return false
	}
	if b.tok != nil && b.tok.TokensAt(now) < float64(b.tok.Burst()) {
		return false
	}
	return true
}

// quota reads a limiter's state for the headers.
func quota(lim *rate.Limiter, perMinute int64, now time.Time) Quota {
	tokens := lim.TokensAt(now)
	burst := float64(lim.Burst())
	rem := int64(math.Floor(tokens))
	rem = max(min(rem, perMinute), 0)
	var reset time.Duration
	if tokens < burst {
		reset = time.Duration((burst - tokens) / float64(lim.Limit()) * float64(time.Second))
	}
	return Quota{Limit: perMinute, Remaining: rem, Reset: reset}
}

// tighter keeps the quota with less remaining.
func tighter(cur *Quota, q Quota) {
	if cur.Limit == 0 || q.Remaining < cur.Remaining || (q.Remaining == cur.Remaining && q.Reset > cur.Reset) {
		*cur = q
	}
}

// Admit implements Limiter.
func (l *Local) Admit(_ context.Context, r *Request, res *Result) error {
	l.admit(r, res, time.Now())
	return nil
}

func (l *Local) admit(r *Request, res *Result, now time.Time) {
	*res = Result{}
	// What each check took, to give back if a later one refuses. Taking
	// and giving back are AllowN calls (a negative count gives back; see
	// adjust): ReserveN would allocate its Reservation.
	var reqs, toks, conc [MaxChecks]bool
	n := min(len(r.Checks), MaxChecks)
	undo := func(j int) {
		c := &r.Checks[j]
		b := l.lookup(c.Name)
		if b == nil {
			return
		}
		if reqs[j] && b.req != nil {
			b.req.AllowN(now, -1)
		}
		if toks[j] && b.tok != nil {
			adjust(b.tok, -r.Tokens, now)
		}
		if conc[j] {
			b.inflight.Add(-1)
		}
	}
	refuse := func(i int, k Kind, after time.Duration) {
		for j := i; j >= 0; j-- {
			undo(j)
		}
		res.OK, res.Kind, res.Denied, res.RetryAfter = false, k, i, after
		l.refused.Add(1)
	}
	for i := 0; i < n; i++ {
		c := &r.Checks[i]
		if c.Limit == (Limit{}) {
			continue
		}
		b := l.get(c, now)
		b.used.Store(now.UnixNano())
		if rl := b.req; rl != nil {
			if !rl.AllowN(now, 1) {
				tighter(&res.Requests, quota(rl, c.Limit.RPM, now))
				refuse(i, Requests, wait(rl, 1, now))
				return
			}
			reqs[i] = true
			tighter(&res.Requests, quota(rl, c.Limit.RPM, now))
		}
		if tl := b.tok; tl != nil {
			if r.Tokens > 0 {
				if r.Tokens > int64(tl.Burst()) {
					tighter(&res.Tokens, quota(tl, c.Limit.TPM, now))
					refuse(i, TooLarge, 0)
					return
				}
				if !tl.AllowN(now, int(r.Tokens)) {
					tighter(&res.Tokens, quota(tl, c.Limit.TPM, now))
					refuse(i, Tokens, wait(tl, r.Tokens, now))
					return
				}
				toks[i] = true
			}
			tighter(&res.Tokens, quota(tl, c.Limit.TPM, now))
		}
		if max := c.Limit.Concurrency; max > 0 {
			if b.inflight.Add(1) > max {
				b.inflight.Add(-1)
				refuse(i, Concurrency, time.Second)
				return
			}
			conc[i] = true
		}
	}
	res.OK = true
	r.taken = uint8(n)
	l.admitted.Add(1)
}

// wait is how long until lim holds n tokens.
func wait(lim *rate.Limiter, n int64, now time.Time) time.Duration {
	missing := float64(n) - lim.TokensAt(now)
	if missing <= 0 {
		return 0
	}
	return time.Duration(missing / float64(lim.Limit()) * float64(time.Second))
}

// Settle implements Limiter.
func (l *Local) Settle(r *Request, delta int64) { l.settle(r, delta, time.Now()) }

func (l *Local) settle(r *Request, delta int64, now time.Time) {
	n := int(r.taken)
	r.taken = 0
	for i := 0; i < n && i < len(r.Checks); i++ {
		c := &r.Checks[i]
		if c.Limit == (Limit{}) {
			continue
		}
		b := l.lookup(c.Name)
		if b == nil {
			continue // evicted while in use: nothing to give back
		}
		if c.Limit.Concurrency > 0 {
			b.inflight.Add(-1)
		}
		if tl := b.tok; tl != nil && delta != 0 && r.Tokens > 0 {
			adjust(tl, delta, now)
		}
	}
}

// adjust charges delta more tokens to lim (into debt if need be), or
// refunds -delta. x/time/rate has no refund; taking a negative count adds
// tokens, capped at the burst by the limiter's next use (see
// TestRateRefundByNegativeCount, which pins it). Refunds allocate nothing;
// a charge into debt (an upstream that used more than was reserved) makes
// a Reservation.
func adjust(lim *rate.Limiter, delta int64, now time.Time) {
	if delta < 0 {
		for delta < 0 {
			n := int(max(delta, -math.MaxInt32))
			lim.AllowN(now, n)
			delta -= int64(n)
		}
		return
	}
	burst := int64(lim.Burst())
	for delta > 0 {
		n := min(delta, burst)
		lim.ReserveN(now, int(n)) // always OK for n <= burst: it goes into debt
		delta -= n
	}
}

// Stats implements Limiter.
func (l *Local) Stats() Stats {
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return Stats{Admitted: l.admitted.Load(), Refused: l.refused.Load(), StoreUp: true, Buckets: n}
}

// Close implements Limiter; Local has no background work.
func (l *Local) Close() error { return nil }
