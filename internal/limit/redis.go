package limit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
)

var _ Limiter = (*Redis)(nil)

// The buckets live in Redis as GCRA state: a bucket of N per minute with a
// burst of B is one number, its theoretical arrival time (TAT, in
// microseconds of the Redis clock); a cost of n moves it n*T later (T =
// 60s/N) and is admitted while TAT-now stays within B*T. It is the same
// bucket as x/time/rate's, in one key, decided in the server by one script
// on Redis's own clock (the replicas' clocks do not matter). Concurrency
// slots are a sorted set of leases scored by their expiry, so a replica that
// dies without releasing gives its slots back after LeaseTTL.
//
// One admission is one EVALSHA (EVAL once after a Redis restart): all of a
// request's checks are decided together, all or none.

// admitScript: KEYS are 3 per check (request TAT, token TAT, lease set).
// ARGV: tokens, lease member, lease TTL (µs), number of checks, then 5 per
// check: rpm, request burst, tpm, token burst, concurrency (burst already
// bounded by the limit). It returns ok, kind, the refusing check's index,
// retry (µs), then per check decided: rpm, remaining, reset (µs), tpm,
// remaining, reset (µs).
const admitScript = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tokens = tonumber(ARGV[1])
local member = ARGV[2]
local ttl = tonumber(ARGV[3])
local n = tonumber(ARGV[4])
local eps = 0.5
local out = {1, 0, 0, 0}
local function tat(key)
  local v = tonumber(redis.call('GET', key) or now)
  if v < now then v = now end
  return v
end
local function left(tau, T, v)
  local r = math.floor((tau - (v - now)) / T + 1e-9)
  if r < 0 then r = 0 end
  return r
end
local newr, newt = {}, {}
for i = 1, n do
  local a = 4 + (i - 1) * 5
  local rpm, rb, tpm, tb, conc = tonumber(ARGV[a+1]), tonumber(ARGV[a+2]), tonumber(ARGV[a+3]), tonumber(ARGV[a+4]), tonumber(ARGV[a+5])
  local rk, tk, ck = KEYS[3*i-2], KEYS[3*i-1], KEYS[3*i]
  local q = {0, 0, 0, 0, 0, 0}
  local deny, retry = 0, 0
  if rpm > 0 then
    local T = 60000000 / rpm
    local tau = rb * T
    local v = tat(rk)
    local nv = v + T
    q[1] = rpm
    if nv - now - tau > eps then
      deny, retry = 1, nv - now - tau
      q[2], q[3] = left(tau, T, v), v - now
    else
      newr[i] = nv
      q[2], q[3] = left(tau, T, nv), nv - now
    end
  end
  if deny == 0 and tpm > 0 then
    local T = 60000000 / tpm
    local tau = tb * T
    local v = tat(tk)
    q[4] = tpm
    if tokens > 0 then
      local nv = v + tokens * T
      if tokens > tb then
        deny = 4
        q[5], q[6] = left(tau, T, v), v - now
      elseif nv - now - tau > eps then
        deny, retry = 2, nv - now - tau
        q[5], q[6] = left(tau, T, v), v - now
      else
        newt[i] = nv
        q[5], q[6] = left(tau, T, nv), nv - now
      end
    else
      q[5], q[6] = left(tau, T, v), v - now
    end
  end
  if deny == 0 and conc > 0 then
    redis.call('ZREMRANGEBYSCORE', ck, '-inf', string.format('%.0f', now))
    if redis.call('ZCARD', ck) >= conc then
      deny, retry = 3, 1000000
    end
  end
  for j = 1, 6 do out[#out + 1] = math.floor(q[j]) end
  if deny ~= 0 then
    out[1], out[2], out[3], out[4] = 0, deny, i - 1, math.floor(retry)
    return out
  end
end
for i = 1, n do
  if newr[i] then
    redis.call('SET', KEYS[3*i-2], string.format('%.3f', newr[i]), 'PX', math.floor((newr[i] - now) / 1000) + 1000)
  end
  if newt[i] then
    redis.call('SET', KEYS[3*i-1], string.format('%.3f', newt[i]), 'PX', math.floor((newt[i] - now) / 1000) + 1000)
  end
  local conc = tonumber(ARGV[4 + (i - 1) * 5 + 5])
  if conc > 0 then
    redis.call('ZADD', KEYS[3*i], string.format('%.0f', now + ttl), member)
    redis.call('PEXPIRE', KEYS[3*i], math.floor(ttl / 1000) + 1000)
  end
end
return out
`

// settleScript applies many settlements at once. ARGV: the number of
// settlements, then per settlement: token delta, lease member, number of
// checks, then 2 per check: tpm, 1 if it holds a slot. KEYS are 2 per check
// in order (token TAT, lease set). A refund never moves a bucket past full
// (TAT below now); a charge may put it in debt.
const settleScript = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local m = tonumber(ARGV[1])
local a, k = 2, 1
for s = 1, m do
  local delta, member, c = tonumber(ARGV[a]), ARGV[a+1], tonumber(ARGV[a+2])
  a = a + 3
  for i = 1, c do
    local tpm, slot = tonumber(ARGV[a]), ARGV[a+1]
    a = a + 2
    local tk, ck = KEYS[k], KEYS[k+1]
    k = k + 2
    if tpm > 0 and delta ~= 0 then
      local v = tonumber(redis.call('GET', tk) or now)
      if v < now then v = now end
      v = v + delta * 60000000 / tpm
      if v > now then
        redis.call('SET', tk, string.format('%.3f', v), 'PX', math.floor((v - now) / 1000) + 1000)
      else
        redis.call('DEL', tk)
      end
    end
    if slot == '1' then redis.call('ZREM', ck, member) end
  end
end
return m
`

const (
	defaultRedisTimeout  = 250 * time.Millisecond
	defaultRetryInterval = 500 * time.Millisecond
	defaultLeaseTTL      = 10 * time.Minute
	defaultPrefix        = "switchyard:rl:"
	// maxPending bounds the settlements kept while Redis is unreachable;
	// beyond it the oldest are dropped (their leases expire by LeaseTTL
	// and their token buckets refill by themselves).
	maxPending = 100000
	// settleBatch bounds the settlements of one script call.
	settleBatch = 256
)

// Redis keeps limits in a Redis server shared by replicas: the limits hold
// across replicas exactly, as if one process decided them. It connects
// lazily, and while Redis is unreachable it decides locally (Fallback) or
// refuses (Closed), probing until Redis answers again.
type Redis struct {
	o       RedisOptions
	copt    rueidis.ClientOption
	admit   *rueidis.Lua
	settle  *rueidis.Lua
	replica string // this process's lease prefix
	leases  atomic.Uint64

	client atomic.Pointer[rueidisClient]
	up     atomic.Bool

	mu      sync.Mutex
	pending []settlement
	dropped int64

	wake chan struct{}
	done chan struct{}
	wg   sync.WaitGroup

	closeOnce sync.Once

	admitted, refused, roundTrips, storeErrors, fallbacks atomic.Int64
}

type rueidisClient struct{ rueidis.Client }

// settlement is one admitted request's end, waiting to be sent.
type settlement struct {
	delta  int64
	member string
	n      uint8
	names  [MaxChecks]string
	tpm    [MaxChecks]int64
	slot   [MaxChecks]bool
}

// NewRedis makes a limiter on the Redis server at o.URL. An unreachable
// server is not an error (admissions follow Closed or Fallback until it
// answers); a malformed URL is.
func NewRedis(o RedisOptions) (*Redis, error) {
	copt, err := rueidis.ParseURL(o.URL)
	if err != nil {
		return nil, fmt.Errorf("limit: redis URL: %w", redactURLError(err))
	}
	if o.Timeout <= 0 {
		o.Timeout = defaultRedisTimeout
	}
	if o.RetryInterval <= 0 {
		o.RetryInterval = defaultRetryInterval
	}
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = defaultLeaseTTL
	}
	if o.Prefix == "" {
		o.Prefix = defaultPrefix
	}
	if o.Fallback == nil && !o.Closed {
		o.Fallback = NewLocal(LocalOptions{})
	}
	copt.DisableCache = true
	copt.DisableRetry = true // a retried admission could be charged twice
	copt.ForceSingleClient = true
	copt.Dialer = net.Dialer{Timeout: o.Timeout, KeepAlive: time.Second}
	copt.ConnWriteTimeout = 2 * o.Timeout
	copt.ClientName = "switchyard"
	var id [6]byte
	rand.Read(id[:])
	r := &Redis{
		o: o, copt: copt,
		admit:   rueidis.NewLuaScript(admitScript),
		settle:  rueidis.NewLuaScript(settleScript),
		replica: hex.EncodeToString(id[:]),
		wake:    make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
	r.up.Store(true)
	if err := r.connect(); err != nil {
		r.down(err)
	}
	r.wg.Add(1)
	go r.run()
	return r, nil
}

// redactURLError keeps a URL's password out of a parse error.
func redactURLError(err error) error {
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) {
		if inner := ue.Unwrap(); inner != nil {
			return inner
		}
	}
	return err
}

// connect makes the client when there is none.
func (r *Redis) connect() error {
	if r.client.Load() != nil {
		return nil
	}
	c, err := rueidis.NewClient(r.copt)
	if err != nil {
		return err
	}
	r.client.Store(&rueidisClient{c})
	return nil
}

// down records that Redis failed; the first failure after a success is
// reported, and the client is dropped: the probe makes a new one, so no
// connection from before the failure is used after it.
func (r *Redis) down(err error) {
	if r.up.CompareAndSwap(true, false) {
		if c := r.client.Swap(nil); c != nil {
			c.Close()
		}
		if r.o.OnStateChange != nil {
			r.o.OnStateChange(err)
		}
		r.poke()
	}
}

func (r *Redis) recovered() {
	if r.up.CompareAndSwap(false, true) {
		if r.o.OnStateChange != nil {
			r.o.OnStateChange(nil)
		}
	}
}

func (r *Redis) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

func (r *Redis) key(name, kind string) string { return r.o.Prefix + name + kind }

// Admit implements Limiter.
func (r *Redis) Admit(ctx context.Context, q *Request, res *Result) error {
	q.lease = 0
	c := r.client.Load()
	if c == nil || !r.up.Load() {
		return r.fallback(ctx, q, res)
	}
	n := min(len(q.Checks), MaxChecks)
	var keysBuf [3 * MaxChecks]string
	var argsBuf [4 + 5*MaxChecks]string
	keys, args := keysBuf[:0], argsBuf[:0]
	lease := r.leases.Add(1)
	member := r.replica + ":" + strconv.FormatUint(lease, 36)
	args = append(args, strconv.FormatInt(max(q.Tokens, 0), 10), member,
		strconv.FormatInt(r.o.LeaseTTL.Microseconds(), 10), strconv.Itoa(n))
	for i := 0; i < n; i++ {
		c := &q.Checks[i]
		l := c.Limit
		keys = append(keys, r.key(c.Name, ":r"), r.key(c.Name, ":t"), r.key(c.Name, ":c"))
		var rb, tb int64
		if l.RPM > 0 {
			rb = int64(burstOf(l.RPM, l.RequestBurst))
		}
		if l.TPM > 0 {
			tb = int64(burstOf(l.TPM, l.TokenBurst))
		}
		args = append(args, strconv.FormatInt(max(l.RPM, 0), 10), strconv.FormatInt(rb, 10),
			strconv.FormatInt(max(l.TPM, 0), 10), strconv.FormatInt(tb, 10),
			strconv.FormatInt(max(l.Concurrency, 0), 10))
	}
	tctx, cancel := context.WithTimeout(ctx, r.o.Timeout)
	r.roundTrips.Add(1)
	out, err := r.admit.Exec(tctx, c, keys, args).AsIntSlice()
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r.storeErrors.Add(1)
		if _, isRedis := rueidis.IsRedisErr(err); !isRedis {
			r.down(err)
		}
		return r.fallback(ctx, q, res)
	}
	if len(out) < 4 || (len(out)-4)%6 != 0 {
		r.storeErrors.Add(1)
		return r.fallback(ctx, q, res)
	}
	*res = Result{}
	for j := 4; j+6 <= len(out); j += 6 {
		if out[j] > 0 {
			tighter(&res.Requests, Quota{Limit: out[j], Remaining: out[j+1], Reset: time.Duration(out[j+2]) * time.Microsecond})
		}
		if out[j+3] > 0 {
			tighter(&res.Tokens, Quota{Limit: out[j+3], Remaining: out[j+4], Reset: time.Duration(out[j+5]) * time.Microsecond})
		}
	}
	if out[0] != 1 {
		res.Kind = Kind(out[1])
		res.Denied = int(out[2])
		res.RetryAfter = time.Duration(out[3]) * time.Microsecond
		r.refused.Add(1)
		return nil
	}
	res.OK = true
	q.lease = lease
	q.taken = uint8(n)
	r.admitted.Add(1)
	return nil
}

// fallback decides q while Redis is unreachable.
func (r *Redis) fallback(ctx context.Context, q *Request, res *Result) error {
	r.fallbacks.Add(1)
	if r.o.Closed {
		*res = Result{Kind: Unavailable, RetryAfter: r.o.RetryInterval}
		r.refused.Add(1)
		return nil
	}
	return r.o.Fallback.Admit(ctx, q, res)
}

// Settle implements Limiter. A request admitted by Redis is settled in
// the background, batched with others; one admitted locally is settled
// locally.
func (r *Redis) Settle(q *Request, delta int64) {
	if q.lease == 0 {
		if r.o.Fallback != nil {
			r.o.Fallback.Settle(q, delta)
		}
		return
	}
	s := settlement{member: r.replica + ":" + strconv.FormatUint(q.lease, 36)}
	if q.Tokens > 0 {
		s.delta = delta
	}
	work := false
	n := min(int(q.taken), len(q.Checks))
	for i := 0; i < n; i++ {
		c := &q.Checks[i]
		if c.Limit == (Limit{}) {
			continue
		}
		tpm := c.Limit.TPM
		if s.delta == 0 {
			tpm = 0
		}
		slot := c.Limit.Concurrency > 0
		if tpm <= 0 && !slot {
			continue
		}
		s.names[s.n], s.tpm[s.n], s.slot[s.n] = c.Name, tpm, slot
		s.n++
		work = true
	}
	q.lease, q.taken = 0, 0
	if !work {
		return
	}
	r.mu.Lock()
	if len(r.pending) >= maxPending {
		copy(r.pending, r.pending[1:])
		r.pending = r.pending[:len(r.pending)-1]
		r.dropped++
	}
	r.pending = append(r.pending, s)
	r.mu.Unlock()
	r.poke()
}

// run is the background loop: it sends settlements as they come (batched
// while one batch is in flight), and while Redis is unreachable probes it
// every RetryInterval. It exits on Close.
func (r *Redis) run() {
	defer r.wg.Done()
	t := time.NewTicker(r.o.RetryInterval)
	defer t.Stop()
	for {
		select {
		case <-r.done:
			return
		case <-r.wake:
		case <-t.C:
		}
		if !r.up.Load() {
			if !r.probe() {
				continue
			}
		}
		r.flush(context.Background())
	}
}

// probe connects and pings; on success Redis is up again.
func (r *Redis) probe() bool {
	if err := r.connect(); err != nil {
		return false
	}
	c := r.client.Load()
	ctx, cancel := context.WithTimeout(context.Background(), r.o.Timeout)
	defer cancel()
	r.roundTrips.Add(1)
	if err := c.Do(ctx, c.B().Ping().Build()).Error(); err != nil {
		return false
	}
	r.recovered()
	return true
}

// flush sends the pending settlements, a batch per script call; on failure
// the unsent ones stay pending.
func (r *Redis) flush(ctx context.Context) {
	c := r.client.Load()
	if c == nil {
		return
	}
	for {
		r.mu.Lock()
		n := min(len(r.pending), settleBatch)
		if n == 0 {
			r.mu.Unlock()
			return
		}
		batch := make([]settlement, n)
		copy(batch, r.pending)
		r.mu.Unlock()

		keys := make([]string, 0, 2*n*2)
		args := make([]string, 0, 1+n*5)
		args = append(args, strconv.Itoa(n))
		for i := range batch {
			s := &batch[i]
			args = append(args, strconv.FormatInt(s.delta, 10), s.member, strconv.Itoa(int(s.n)))
			for j := 0; j < int(s.n); j++ {
				keys = append(keys, r.key(s.names[j], ":t"), r.key(s.names[j], ":c"))
				slot := "0"
				if s.slot[j] {
					slot = "1"
				}
				args = append(args, strconv.FormatInt(s.tpm[j], 10), slot)
			}
		}
		tctx, cancel := context.WithTimeout(ctx, 4*r.o.Timeout)
		r.roundTrips.Add(1)
		err := r.settle.Exec(tctx, c, keys, args).Error()
		cancel()
		if err != nil {
			r.storeErrors.Add(1)
			if _, isRedis := rueidis.IsRedisErr(err); !isRedis {
				r.down(err)
			}
			return
		}
		r.mu.Lock()
		// Settle may have dropped the oldest meanwhile; drop what was sent
		// from what is still there.
		k := min(n, len(r.pending))
		r.pending = append(r.pending[:0], r.pending[k:]...)
		r.mu.Unlock()
	}
}

// Stats implements Limiter.
func (r *Redis) Stats() Stats {
	st := Stats{
		Admitted: r.admitted.Load(), Refused: r.refused.Load(),
		RoundTrips: r.roundTrips.Load(), StoreErrors: r.storeErrors.Load(),
		Fallbacks: r.fallbacks.Load(), StoreUp: r.up.Load(),
	}
	if r.o.Fallback != nil {
		fs := r.o.Fallback.Stats()
		st.Admitted += fs.Admitted
		st.Refused += fs.Refused
		st.Buckets = fs.Buckets
	}
	return st
}

// Close implements Limiter: it stops the background loop, sends what is
// pending (bounded by a second) and closes the connection.
func (r *Redis) Close() error {
	r.closeOnce.Do(func() {
		close(r.done)
		r.wg.Wait()
		if r.up.Load() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			r.flush(ctx)
			cancel()
		}
		if c := r.client.Load(); c != nil {
			c.Close()
		}
	})
	return nil
}
