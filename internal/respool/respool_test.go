package respool

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// res is a resource that counts its Close calls.
type res struct {
	name   string
	closed atomic.Int32
}

func (r *res) Close() error { r.closed.Add(1); return nil }

// TestUnchangedSettingsKeepTheInstance builds 20 generations in turn, each
// asking for the same key; the previous generation's lease is released after
// the next one is built, as a reload does.
func TestUnchangedSettingsKeepTheInstance(t *testing.T) {
	p := New()
	var made atomic.Int32
	newRes := func() (*res, error) { made.Add(1); return &res{name: "limiter"}, nil }
	key, err := Key("ratelimit", map[string]any{"rpm": 60, "burst": 10})
	if err != nil {
		t.Fatal(err)
	}
	var old *Lease
	var first *res
	for i := 0; i < 20; i++ {
		l := p.Lease()
		r, err := Get(l, key, newRes)
		if err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
		if first == nil {
			first = r
		}
		if r != first {
			t.Fatalf("reload %d: got a new instance %p, want %p", i, r, first)
		}
		if old != nil {
			if err := old.Release(); err != nil {
				t.Fatalf("reload %d: releasing: %v", i, err)
			}
		}
		old = l
		if n := first.closed.Load(); n != 0 {
			t.Fatalf("reload %d: the instance was closed %d times", i, n)
		}
		if got := p.Refs(key); got != 1 {
			t.Fatalf("reload %d: refs = %d, want 1", i, got)
		}
	}
	if n := made.Load(); n != 1 {
		t.Fatalf("constructed %d times, want 1", n)
	}
	if err := old.Release(); err != nil {
		t.Fatal(err)
	}
	if n := first.closed.Load(); n != 1 {
		t.Fatalf("after the last release: closed %d times, want 1", n)
	}
	if p.Len() != 0 {
		t.Fatalf("pool holds %d values after the last release", p.Len())
	}
}

func TestChangedSettingsGetANewInstance(t *testing.T) {
	p := New()
	mk := func(s string) func() (*res, error) { return func() (*res, error) { return &res{name: s}, nil } }
	k1, _ := Key("cache", struct{ Size int }{100})
	k2, _ := Key("cache", struct{ Size int }{200})
	if k1 == k2 {
		t.Fatalf("different settings, same key %q", k1)
	}
	old := p.Lease()
	r1, err := Get(old, k1, mk("old"))
	if err != nil {
		t.Fatal(err)
	}
	next := p.Lease()
	r2, err := Get(next, k2, mk("new"))
	if err != nil {
		t.Fatal(err)
	}
	if r1 == r2 {
		t.Fatal("changed settings got the old instance")
	}
	if r1.closed.Load() != 0 {
		t.Fatal("the old instance was closed while its generation still runs")
	}
	_ = old.Release()
	_ = old.Release() // a second release does nothing
	if n := r1.closed.Load(); n != 1 {
		t.Fatalf("old instance closed %d times after its last user retired, want 1", n)
	}
	if r2.closed.Load() != 0 {
		t.Fatal("the new instance was closed")
	}
	_ = next.Release()
	if n := r2.closed.Load(); n != 1 {
		t.Fatalf("new instance closed %d times, want 1", n)
	}
}

func TestConstructorErrorIsNotCached(t *testing.T) {
	p := New()
	l := p.Lease()
	defer l.Release()
	calls := 0
	f := func(fail error) {
		t.Helper()
		calls++
		r, err := Get(l, "db:x", func() (*res, error) {
			if fail != nil {
				return nil, fail
			}
			return &res{}, nil
		})
		if fail != nil {
			if !errors.Is(err, fail) || r != nil {
				t.Fatalf("call %d: got %v, %v; want error %v", calls, r, err, fail)
			}
			if p.Len() != 0 {
				t.Fatalf("call %d: a failed construction stayed in the pool", calls)
			}
			return
		}
		if err != nil || r == nil {
			t.Fatalf("call %d: got %v, %v; want a value", calls, r, err)
		}
	}
	boom := errors.New("connection refused")
	f(boom)
	f(boom)
	f(nil)
	if got := p.Refs("db:x"); got != 1 {
		t.Fatalf("refs = %d, want 1 (failed calls take no use)", got)
	}
}

func TestConstructorPanicIsAnError(t *testing.T) {
	p := New()
	_, _, err := LoadOrNew(p, "k", func() (*res, error) { panic("bad settings") })
	if err == nil || p.Len() != 0 {
		t.Fatalf("err = %v, len = %d; want an error and an empty pool", err, p.Len())
	}
}

func TestConcurrentLoadConstructsOnce(t *testing.T) {
	p := New()
	var made atomic.Int32
	gate := make(chan struct{})
	newRes := func() (*res, error) {
		made.Add(1)
		<-gate // hold the constructor so that the others have to wait for it
		return &res{}, nil
	}
	const n = 32
	var wg sync.WaitGroup
	got := make([]*res, n)
	rel := make([]func() error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, r, err := LoadOrNew(p, "queue", newRes)
			if err != nil {
				t.Error(err)
			}
			got[i], rel[i] = v, r
		}()
	}
	// Another key is not held up by the slow constructor.
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, r, err := LoadOrNew(p, "other", func() (*res, error) { return &res{}, nil })
		if err != nil {
			t.Error(err)
			return
		}
		_ = r()
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("a constructor of another key blocked an unrelated key")
	}
	for p.Refs("queue") < n { // every caller has joined the one entry
		time.Sleep(time.Millisecond)
	}
	close(gate)
	wg.Wait()
	if m := made.Load(); m != 1 {
		t.Fatalf("constructed %d times, want 1", m)
	}
	for i := range got {
		if got[i] != got[0] {
			t.Fatalf("caller %d got another instance", i)
		}
	}
	// Concurrent releases close exactly once.
	for i := range rel {
		wg.Add(1)
		go func() { defer wg.Done(); _ = rel[i](); _ = rel[i]() }()
	}
	wg.Wait()
	if c := got[0].closed.Load(); c != 1 {
		t.Fatalf("closed %d times, want 1", c)
	}
	if p.Len() != 0 {
		t.Fatalf("pool holds %d values", p.Len())
	}
}

// TestFailedBuildUndoesItsUses: a generation whose build fails half-way
// releases its lease, which closes what only it used and leaves what the
// serving generation shares.
func TestFailedBuildUndoesItsUses(t *testing.T) {
	p := New()
	serving := p.Lease()
	shared, _ := Get(serving, "shared", func() (*res, error) { return &res{}, nil })

	failed := p.Lease()
	s2, _ := Get(failed, "shared", func() (*res, error) { return &res{}, nil })
	own, _ := Get(failed, "own", func() (*res, error) { return &res{}, nil })
	if _, err := Get(failed, "broken", func() (*res, error) { return nil, errors.New("bad") }); err == nil {
		t.Fatal("want the constructor's error")
	}
	if err := failed.Release(); err != nil {
		t.Fatal(err)
	}
	if s2 != shared || shared.closed.Load() != 0 {
		t.Fatal("the shared resource was not shared, or was closed by the failed build")
	}
	if own.closed.Load() != 1 {
		t.Fatal("the failed build's own resource was not closed")
	}
	if _, err := Get(failed, "late", func() (*res, error) { return &res{}, nil }); !errors.Is(err, ErrReleased) {
		t.Fatalf("Get on a released lease: %v, want ErrReleased", err)
	}
	if p.Refs("shared") != 1 || p.Len() != 1 {
		t.Fatalf("refs = %d, len = %d; want 1, 1", p.Refs("shared"), p.Len())
	}
	_ = serving.Release()
	if shared.closed.Load() != 1 {
		t.Fatal("the shared resource was not closed after its last user")
	}
}

type closeErr struct{}

func (closeErr) Close() error { return errors.New("flush failed") }

func TestTypeMismatchAndCloseErrors(t *testing.T) {
	p := New()
	l := p.Lease()
	if _, err := Get(l, "k", func() (closeErr, error) { return closeErr{}, nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := Get(l, "k", func() (*res, error) { return &res{}, nil }); err == nil {
		t.Fatal("a key holding another type must be an error")
	}
	if p.Refs("k") != 1 {
		t.Fatalf("refs = %d after a mismatch, want 1", p.Refs("k"))
	}
	err := l.Release()
	if err == nil || err.Error() != fmt.Sprintf("closing %q: flush failed", "k") {
		t.Fatalf("Release: %v", err)
	}
}

func TestKey(t *testing.T) {
	f := func(a, b any, same bool) {
		t.Helper()
		ka, err := Key("kind", a)
		if err != nil {
			t.Fatal(err)
		}
		kb, _ := Key("kind", b)
		if (ka == kb) != same {
			t.Fatalf("Key(%v) = %s, Key(%v) = %s; same = %v, want %v", a, ka, b, kb, ka == kb, same)
		}
	}
	f(map[string]int{"a": 1, "b": 2}, map[string]int{"b": 2, "a": 1}, true)
	f(map[string]int{"a": 1}, map[string]int{"a": 2}, false)
	f(struct{ URL string }{"redis://a"}, struct{ URL string }{"redis://a"}, true)
	if k, _ := Key("redis", "secret-password"); len(k) != len("redis:")+32 {
		t.Fatalf("key %q does not look like kind:hash", k)
	}
	if _, err := Key("x", func() {}); err == nil {
		t.Fatal("unencodable settings must be an error")
	}
}
