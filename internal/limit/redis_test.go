package limit

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"switchyard/internal/testsvc"
)

// newRedis makes a limiter on srv with a key prefix of its own, closed
// with the test.
func newRedis(t testing.TB, srv *testsvc.Redis, o RedisOptions) *Redis {
	t.Helper()
	o.URL = srv.URL()
	if o.Prefix == "" {
		o.Prefix = fmt.Sprintf("test:%s:", t.Name())
	}
	r, err := NewRedis(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// settled waits until r has sent its pending settlements.
func settled(t testing.TB, r *Redis) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		r.mu.Lock()
		n := len(r.pending)
		r.mu.Unlock()
		if n == 0 {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatal("settlements not sent within 5s")
}

func TestRedisSameDecisionsAsLocal(t *testing.T) {
	srv := testsvc.StartRedis(t)
	cases := []struct {
		name   string
		req    Request
		n      int
		wantOK int
		kind   Kind
	}{
		{"rpm burst", Request{Checks: []Check{{Name: "a", Limit: Limit{RPM: 60, RequestBurst: 5}}}}, 8, 5, Requests},
		{"rpm default burst", Request{Checks: []Check{{Name: "a", Limit: Limit{RPM: 4}}}}, 6, 4, Requests},
		{"tpm", Request{Tokens: 300, Checks: []Check{{Name: "a", Limit: Limit{TPM: 1000}}}}, 5, 3, Tokens},
		{"too large", Request{Tokens: 3000, Checks: []Check{{Name: "a", Limit: Limit{TPM: 1000}}}}, 2, 0, TooLarge},
		{"concurrency", Request{Checks: []Check{{Name: "a", Limit: Limit{Concurrency: 2}}}}, 4, 2, Concurrency},
		{"tightest of three", Request{Tokens: 10, Checks: []Check{
			{Name: "k", Limit: Limit{RPM: 100, TPM: 10000}},
			{Name: "t", Limit: Limit{RPM: 3}},
			{Name: "p", Limit: Limit{TPM: 25}},
		}}, 5, 2, Tokens},
		{"no limits", Request{Checks: []Check{{Name: "a"}}}, 3, 3, None},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			red := newRedis(t, srv, RedisOptions{})
			loc := NewLocal(LocalOptions{})
			rq, lq := tc.req, tc.req
			rok, rres := admitN(red, &rq, tc.n)
			lok, lres := admitN(loc, &lq, tc.n)
			if rok != tc.wantOK || lok != tc.wantOK {
				t.Fatalf("admitted: redis %d, local %d, want %d", rok, lok, tc.wantOK)
			}
			if rres.OK != lres.OK || rres.Kind != lres.Kind || rres.Kind != tc.kind || rres.Denied != lres.Denied {
				t.Fatalf("last decision: redis %+v, local %+v", rres, lres)
			}
			if rres.Requests.Limit != lres.Requests.Limit || rres.Requests.Remaining != lres.Requests.Remaining ||
				rres.Tokens.Limit != lres.Tokens.Limit || rres.Tokens.Remaining != lres.Tokens.Remaining {
				t.Fatalf("quotas: redis %+v / %+v, local %+v / %+v", rres.Requests, rres.Tokens, lres.Requests, lres.Tokens)
			}
			near := func(what string, a, b time.Duration) {
				if d := a - b; d < -50*time.Millisecond || d > 50*time.Millisecond {
					t.Errorf("%s: redis %v, local %v", what, a, b)
				}
			}
			near("retry", rres.RetryAfter, lres.RetryAfter)
			near("request reset", rres.Requests.Reset, lres.Requests.Reset)
			near("token reset", rres.Tokens.Reset, lres.Tokens.Reset)
		})
	}
}

func TestRedisSharedAcrossLimiters(t *testing.T) {
	srv := testsvc.StartRedis(t)
	o := RedisOptions{Prefix: "shared:"}
	a, b := newRedis(t, srv, o), newRedis(t, srv, o)
	req := func() *Request {
		return &Request{Checks: []Check{{Name: "key:k", Limit: Limit{RPM: 600, RequestBurst: 30}}}}
	}
	var admitted atomic.Int64
	var wg sync.WaitGroup
	for _, l := range []*Redis{a, b} {
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ok, _ := admitN(l, req(), 20)
				admitted.Add(int64(ok))
			}()
		}
	}
	wg.Wait()
	// 160 attempts within well under a second: the burst of 30, plus at
	// most the refill of 10 a second over the test's run time.
	if n := admitted.Load(); n < 30 || n > 35 {
		t.Fatalf("two replicas admitted %d, want 30 (the shared burst) plus at most a few refilled", n)
	}
}

func TestRedisAllOrNone(t *testing.T) {
	srv := testsvc.StartRedis(t)
	r := newRedis(t, srv, RedisOptions{})
	a := Check{Name: "a", Limit: Limit{RPM: 100}}
	b := Check{Name: "b", Limit: Limit{RPM: 1}}
	both := &Request{Checks: []Check{a, b}}
	admitN(r, both, 1)
	if _, res := admitN(r, both, 1); res.OK || res.Denied != 1 || res.Kind != Requests {
		t.Fatalf("second: %+v, want refused by check 1", res)
	}
	if _, res := admitN(r, &Request{Checks: []Check{a}}, 1); !res.OK || res.Requests.Remaining != 98 {
		t.Fatalf("a alone: %+v, want 98 left (the refused request took nothing)", res)
	}
}

func TestRedisReserveAndSettle(t *testing.T) {
	srv := testsvc.StartRedis(t)
	r := newRedis(t, srv, RedisOptions{})
	c := []Check{{Name: "k", Limit: Limit{TPM: 1000, Concurrency: 1}}}
	q := &Request{Tokens: 600, Checks: c}
	var res Result
	r.Admit(context.Background(), q, &res)
	if !res.OK || res.Tokens.Remaining != 400 {
		t.Fatalf("reserve: %+v", res)
	}
	q2 := &Request{Tokens: 100, Checks: c}
	if r.Admit(context.Background(), q2, &res); res.OK || res.Kind != Concurrency {
		t.Fatalf("second in flight: %+v, want refused by concurrency", res)
	}
	r.Settle(q, -500) // used 100 of 600
	settled(t, r)
	if r.Admit(context.Background(), q2, &res); !res.OK || res.Tokens.Remaining < 799 || res.Tokens.Remaining > 801 {
		t.Fatalf("after the refund: %+v, want 800 left", res)
	}
	r.Settle(q2, 900) // used 1000 of 100: into debt
	settled(t, r)
	if r.Admit(context.Background(), &Request{Tokens: 1, Checks: c}, &res); res.OK || res.Kind != Tokens || res.RetryAfter < 5*time.Second { // 100 in debt: 101 tokens at 1000 a minute
		t.Fatalf("in debt: %+v, want refused for a while", res)
	}
}

func TestRedisLeaseOfDeadReplicaExpires(t *testing.T) {
	srv := testsvc.StartRedis(t)
	o := RedisOptions{LeaseTTL: 200 * time.Millisecond, Prefix: "lease:"}
	dead := newRedis(t, srv, o)
	c := []Check{{Name: "k", Limit: Limit{Concurrency: 1}}}
	if ok, _ := admitN(dead, &Request{Checks: c}, 1); ok != 1 {
		t.Fatal("first not admitted")
	}
	live := newRedis(t, srv, o)
	if ok, _ := admitN(live, &Request{Checks: c}, 1); ok != 0 {
		t.Fatal("slot held by the other replica was given")
	}
	time.Sleep(300 * time.Millisecond)
	if ok, _ := admitN(live, &Request{Checks: c}, 1); ok != 1 {
		t.Fatal("slot of a replica that never released not given back after its lease")
	}
}

func TestRedisOneRoundTripPerAdmission(t *testing.T) {
	srv := testsvc.StartRedis(t)
	r := newRedis(t, srv, RedisOptions{})
	q := &Request{Tokens: 5, Checks: []Check{
		{Name: "k", Limit: Limit{RPM: 1 << 30, TPM: 1 << 30}},
		{Name: "t", Limit: Limit{RPM: 1 << 30}},
		{Name: "p", Limit: Limit{TPM: 1 << 30}},
	}}
	admitN(r, q, 1) // loads the script
	before := r.Stats().RoundTrips
	admitN(r, q, 50)
	if n := r.Stats().RoundTrips - before; n != 50 {
		t.Fatalf("%d round trips for 50 admissions of 3 checks, want 50", n)
	}
}

func TestRedisUnreachable(t *testing.T) {
	for _, closed := range []bool{false, true} {
		t.Run(fmt.Sprintf("closed=%v", closed), func(t *testing.T) {
			srv := testsvc.StartRedis(t)
			var mu sync.Mutex
			var events []string
			r := newRedis(t, srv, RedisOptions{Closed: closed, RetryInterval: 50 * time.Millisecond,
				OnStateChange: func(err error) {
					mu.Lock()
					defer mu.Unlock()
					if err != nil {
						events = append(events, "down")
					} else {
						events = append(events, "up")
					}
				}})
			q := func() *Request { return &Request{Checks: []Check{{Name: "k", Limit: Limit{RPM: 600}}}} }
			if ok, _ := admitN(r, q(), 1); ok != 1 {
				t.Fatal("not admitted while up")
			}
			srv.Kill()
			start := time.Now()
			ok, res := admitN(r, q(), 5)
			if took := time.Since(start); took > 2*time.Second {
				t.Errorf("5 admissions with Redis down took %v", took)
			}
			if closed {
				if ok != 0 || res.Kind != Unavailable {
					t.Fatalf("closed: %d admitted, last %+v", ok, res)
				}
			} else if ok != 5 {
				t.Fatalf("local fallback: %d of 5 admitted", ok)
			}
			st := r.Stats()
			if st.StoreUp || st.StoreErrors < 1 || st.Fallbacks != 5 {
				t.Fatalf("stats while down: %+v", st)
			}
			srv.Restart()
			deadline := time.Now().Add(5 * time.Second)
			for !r.Stats().StoreUp && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if ok, res := admitN(r, q(), 1); ok != 1 {
				t.Fatalf("after restart: %+v", res)
			}
			mu.Lock()
			got := strings.Join(events, ",")
			mu.Unlock()
			if got != "down,up" {
				t.Fatalf("state changes %q, want down,up", got)
			}
		})
	}
}

func TestRedisDownAtStart(t *testing.T) {
	port := testsvc.FreePort(t)
	var downs atomic.Int64
	r, err := NewRedis(RedisOptions{URL: fmt.Sprintf("redis://127.0.0.1:%d", port), OnStateChange: func(err error) {
		if err != nil {
			downs.Add(1)
		}
	}})
	if err != nil {
		t.Fatalf("an unreachable server is not an error: %v", err)
	}
	defer r.Close()
	if ok, _ := admitN(r, &Request{Checks: []Check{{Name: "k", Limit: Limit{RPM: 1}}}}, 2); ok != 1 {
		t.Fatalf("local fallback admitted %d of 2, want 1", ok)
	}
	if downs.Load() != 1 {
		t.Fatalf("%d state changes reported, want 1", downs.Load())
	}
}

func TestRedisBadURL(t *testing.T) {
	for _, u := range []string{"http://x", "redis://:secretpw@[::1", ""} {
		_, err := NewRedis(RedisOptions{URL: u})
		if err == nil {
			t.Errorf("%q: no error", u)
		} else if strings.Contains(err.Error(), "secretpw") {
			t.Errorf("%q: the error shows the password: %v", u, err)
		}
	}
}

func BenchmarkRedisAdmit(b *testing.B) {
	srv := testsvc.StartRedis(b)
	r := newRedis(b, srv, RedisOptions{})
	q := &Request{Tokens: 100, Checks: []Check{
		{Name: "key:k", Limit: Limit{RPM: 1 << 40, TPM: 1 << 40}},
		{Name: "tenant:t", Limit: Limit{RPM: 1 << 40}},
		{Name: "pool:p", Limit: Limit{TPM: 1 << 40, Concurrency: 1 << 20}},
	}}
	b.ReportAllocs()
	var res Result
	for b.Loop() {
		r.Admit(context.Background(), q, &res)
		if !res.OK {
			b.Fatalf("refused: %+v", res)
		}
		r.Settle(q, -50)
	}
}
