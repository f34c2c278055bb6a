package shed

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

func TestPriorityOrderAndFIFO(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := New(1, 10, nil)
		if err := g.Acquire(context.Background(), Standard, time.Second); err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		var order []string
		var wg sync.WaitGroup
		enqueue := func(name string, c Class) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := g.Acquire(context.Background(), c, time.Minute); err != nil {
					t.Errorf("%s: %v", name, err)
					return
				}
				mu.Lock()
				order = append(order, name)
				mu.Unlock()
				time.Sleep(time.Millisecond)
				g.Release()
			}()
			synctest.Wait() // queued in this order
		}
		enqueue("std1", Standard)
		enqueue("crit1", Critical)
		enqueue("std2", Standard)
		enqueue("crit2", Critical)
		if s := g.Stats(); s.Queued[Critical] != 2 || s.Queued[Standard] != 2 {
			t.Fatalf("queued %v", s.Queued)
		}
		g.Release()
		wg.Wait()
		want := []string{"crit1", "crit2", "std1", "std2"}
		for i := range want {
			if order[i] != want[i] {
				t.Fatalf("order %v, want %v", order, want)
			}
		}
		if s := g.Stats(); s.InFlight != 0 {
			t.Errorf("in flight at the end: %d", s.InFlight)
		}
	})
}

func TestShedTimeoutAndQueueBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var waits []time.Duration
		g := New(1, 1, func(_ Class, d time.Duration) { waits = append(waits, d) })
		ctx := context.Background()
		g.Acquire(ctx, Critical, time.Second)
		if err := g.Acquire(ctx, Sheddable, time.Minute); !errors.Is(err, ErrShed) {
			t.Errorf("sheddable when full: %v", err)
		}
		start := time.Now()
		done := make(chan error)
		go func() { done <- g.Acquire(ctx, Standard, 100*time.Millisecond) }()
		synctest.Wait()
		if err := g.Acquire(ctx, Critical, time.Minute); !errors.Is(err, ErrShed) {
			t.Errorf("over the queue bound: %v", err)
		}
		if err := <-done; !errors.Is(err, ErrTimeout) || time.Since(start) != 100*time.Millisecond {
			t.Errorf("standard: %v after %v", err, time.Since(start))
		}
		go func() { done <- g.Acquire(ctx, Standard, time.Minute) }()
		time.Sleep(30 * time.Millisecond)
		g.Release()
		if err := <-done; err != nil || len(waits) != 1 || waits[0] != 30*time.Millisecond {
			t.Errorf("hand-off: %v, waits %v", err, waits)
		}
		s := g.Stats()
		if s.Shed[Sheddable] != 1 || s.Shed[Critical] != 1 || s.Timeouts[Standard] != 1 || s.InFlight != 1 {
			t.Errorf("stats %+v", s)
		}
	})
}

func TestLeaveOnCancelAndCapacityChange(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := New(1, 10, nil)
		g.Acquire(context.Background(), Standard, time.Second)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- g.Acquire(ctx, Critical, time.Minute) }()
		synctest.Wait()
		cancel() // the client left
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled waiter: %v", err)
		}
		if s := g.Stats(); s.Queued[Critical] != 0 {
			t.Fatalf("the waiter stayed queued: %+v", s)
		}
		go func() { done <- g.Acquire(context.Background(), Standard, time.Minute) }()
		synctest.Wait()
		g.SetCapacity(2) // a reload grew it
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		g.SetCapacity(1)
		g.Release()
		g.Release()
		if s := g.Stats(); s.InFlight != 0 || s.Capacity != 1 {
			t.Errorf("stats %+v", s)
		}
	})
}

// TestStress: many goroutines, random classes and cancels; never more than
// the capacity in flight, and every slot back at the end.
func TestStress(t *testing.T) {
	const capacity = 4
	g := New(capacity, 64, nil)
	var inflight, peak atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), time.Duration(rand.IntN(3000))*time.Microsecond)
			defer cancel()
			if g.Acquire(ctx, Class(rand.IntN(3)), 5*time.Millisecond) != nil {
				return
			}
			n := inflight.Add(1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			time.Sleep(time.Duration(rand.IntN(500)) * time.Microsecond)
			inflight.Add(-1)
			g.Release()
		}()
	}
	wg.Wait()
	if peak.Load() > capacity {
		t.Errorf("%d in flight at once, capacity %d", peak.Load(), capacity)
	}
	if s := g.Stats(); s.InFlight != 0 || s.Queued[Critical]+s.Queued[Standard] != 0 {
		t.Errorf("after the stress: %+v", s)
	}
}

func BenchmarkAcquireRelease(b *testing.B) {
	g := New(1<<20, 10, nil)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		g.Acquire(ctx, Standard, time.Second)
		g.Release()
	}
}

func BenchmarkAcquireContended(b *testing.B) {
	g := New(2, 1<<20, nil)
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if g.Acquire(ctx, Critical, time.Minute) == nil {
				g.Release()
			}
		}
	})
}
