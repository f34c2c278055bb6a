package limit

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/time/rate"
)

func admitN(l Limiter, r *Request, n int) (ok int, last Result) {
	for i := 0; i < n; i++ {
		var res Result
		if err := l.Admit(context.Background(), r, &res); err != nil {
			panic(err)
		}
		if res.OK {
			ok++
		}
		last = res
	}
	return ok, last
}

func TestLocalBurstThenSteadyRate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := NewLocal(LocalOptions{})
		r := &Request{Checks: []Check{{Name: "key:a", Limit: Limit{RPM: 60, RequestBurst: 5}}}}
		if ok, res := admitN(l, r, 10); ok != 5 || res.Kind != Requests || res.RetryAfter <= 0 || res.RetryAfter > time.Second {
			t.Fatalf("burst: %d admitted, last %+v", ok, res)
		}
		time.Sleep(3 * time.Second) // 1 a second
		if ok, _ := admitN(l, r, 10); ok != 3 {
			t.Fatalf("after 3s: %d admitted, want 3", ok)
		}
	})
}

func TestLocalQuotasAndHeaders(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := NewLocal(LocalOptions{})
		r := &Request{Tokens: 100, Checks: []Check{
			{Name: "key:a", Limit: Limit{RPM: 10, TPM: 1000}},
			{Name: "tenant:t", Limit: Limit{RPM: 3}},
		}}
		_, res := admitN(l, r, 1)
		if !res.OK || res.Requests.Limit != 3 || res.Requests.Remaining != 2 || res.Tokens.Limit != 1000 || res.Tokens.Remaining != 900 {
			t.Fatalf("quotas: %+v", res)
		}
		if res.Requests.Reset != 20*time.Second {
			t.Errorf("reset %v, want 20s (one request of 3 a minute)", res.Requests.Reset)
		}
	})
}

func TestLocalAllOrNone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := NewLocal(LocalOptions{})
		a := Check{Name: "key:a", Limit: Limit{RPM: 100}}
		b := Check{Name: "tenant:t", Limit: Limit{RPM: 1}}
		r := &Request{Checks: []Check{a, b}}
		admitN(l, r, 1)
		// b refuses: a must get its request back.
		if ok, res := admitN(l, r, 5); ok != 0 || res.Denied != 1 {
			t.Fatalf("%d admitted, denied %d", ok, res.Denied)
		}
		_, res := admitN(l, &Request{Checks: []Check{a}}, 1)
		if res.Requests.Remaining != 98 {
			t.Errorf("a's remaining %d, want 98: a refusal took from it", res.Requests.Remaining)
		}
	})
}

func TestLocalTokensReserveSettle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := NewLocal(LocalOptions{})
		c := Check{Name: "key:a", Limit: Limit{TPM: 1000}}
		r := &Request{Tokens: 600, Checks: []Check{c}}
		if ok, _ := admitN(l, r, 1); ok != 1 {
			t.Fatal("first")
		}
		r2 := &Request{Tokens: 600, Checks: []Check{c}}
		if ok, res := admitN(l, r2, 1); ok != 0 || res.Kind != Tokens {
			t.Fatalf("second should not fit before settlement: %+v", res)
		}
		l.Settle(r, -500) // used 100 of 600
		if ok, res := admitN(l, r2, 1); ok != 1 || res.Tokens.Remaining != 300 {
			t.Fatalf("after the refund: %+v", res)
		}
		l.Settle(r2, 700) // used 1300: into debt
		_, res := admitN(l, &Request{Tokens: 1, Checks: []Check{c}}, 1)
		if res.OK || res.Tokens.Remaining != 0 || res.RetryAfter < 23*time.Second || res.RetryAfter > 25*time.Second {
			t.Fatalf("in debt: %+v", res)
		}
		// Too large is never admissible.
		if _, res := admitN(l, &Request{Tokens: 1001, Checks: []Check{c}}, 1); res.Kind != TooLarge {
			t.Fatalf("too large: %+v", res)
		}
	})
}

func TestLocalConcurrency(t *testing.T) {
	l := NewLocal(LocalOptions{})
	c := Check{Name: "key:a", Limit: Limit{Concurrency: 2}}
	r1, r2, r3 := &Request{Checks: []Check{c}}, &Request{Checks: []Check{c}}, &Request{Checks: []Check{c}}
	admitN(l, r1, 1)
	admitN(l, r2, 1)
	if _, res := admitN(l, r3, 1); res.OK || res.Kind != Concurrency {
		t.Fatalf("third in flight: %+v", res)
	}
	l.Settle(r1, 0)
	if ok, _ := admitN(l, r3, 1); ok != 1 {
		t.Fatal("a slot was not released")
	}
}

func TestLocalLimitChangeAndEviction(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := NewLocal(LocalOptions{MaxBuckets: 64})
		r := &Request{Checks: []Check{{Name: "key:a", Limit: Limit{RPM: 2}}}}
		if ok, _ := admitN(l, r, 5); ok != 2 {
			t.Fatal("rpm 2")
		}
		r.Checks[0].Limit.RPM = 10 // a reload raised it: the new rate counts from its first use
		admitN(l, r, 1)
		time.Sleep(6 * time.Second)
		if ok, _ := admitN(l, r, 5); ok != 1 {
			t.Fatalf("after the change: %d admitted, want one refill at the new rate", ok)
		}
		for i := 0; i < 1000; i++ {
			admitN(l, &Request{Checks: []Check{{Name: "hdr:" + string(rune('a'+i%26)) + string(rune(i)), Limit: Limit{RPM: 1}}}}, 1)
		}
		if n := l.Stats().Buckets; n > 64+nShards {
			t.Errorf("%d buckets kept, bound about 64", n)
		}
	})
}

// TestRateRefundByNegativeCount pins the x/time/rate behaviour the refunds
// rely on: taking -n adds n tokens, and the next use caps them at the burst.
func TestRateRefundByNegativeCount(t *testing.T) {
	now := time.Unix(1000, 0)
	lim := rate.NewLimiter(1, 10)
	lim.AllowN(now, 8)
	if !lim.AllowN(now, -5) {
		t.Fatal("a negative count was refused")
	}
	if got := lim.TokensAt(now); got != 7 {
		t.Fatalf("after a refund of 5: %v tokens, want 7", got)
	}
	lim.AllowN(now, -50)
	lim.AllowN(now, 1)
	if got := lim.TokensAt(now); got != 9 {
		t.Fatalf("a refund past the burst: %v tokens after one more use, want 9 (capped at 10, minus 1)", got)
	}
}

func BenchmarkLocalAdmit(b *testing.B) {
	l := NewLocal(LocalOptions{})
	r := &Request{Tokens: 100, Checks: []Check{
		{Name: "key:a", Limit: Limit{RPM: 1 << 40, TPM: 1 << 40, Concurrency: 1 << 30}},
		{Name: "tenant:t", Limit: Limit{RPM: 1 << 40, TPM: 1 << 40}},
		{Name: "pool:p", Limit: Limit{RPM: 1 << 40}},
	}}
	b.ReportAllocs()
	var res Result
	for b.Loop() {
		l.Admit(context.Background(), r, &res)
		l.Settle(r, -50)
	}
}

func BenchmarkLocalAdmitParallel(b *testing.B) {
	l := NewLocal(LocalOptions{})
	checks := []Check{
		{Name: "key:a", Limit: Limit{RPM: 1 << 40, TPM: 1 << 40}},
		{Name: "pool:p", Limit: Limit{RPM: 1 << 40}},
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		r := &Request{Tokens: 100, Checks: checks}
		var res Result
		for pb.Next() {
			l.Admit(context.Background(), r, &res)
			l.Settle(r, -50)
		}
	})
}
