package batch

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// result is what the test runners answer: the payload echoed with the
// batch it ran in.
type result struct {
	Echo  string
	Batch int
	Pos   int
}

// recorder is a runner that sleeps for cost, answers each request with its
// payload, and records every batch's payloads.
type recorder struct {
	cost time.Duration
	mu   sync.Mutex
	runs [][]string
}

func (rc *recorder) run(ctx context.Context, batch []*Request[result]) {
	rc.mu.Lock()
	n := len(rc.runs)
	var ps []string
	for _, r := range batch {
		ps = append(ps, string(r.Payload))
	}
	rc.runs = append(rc.runs, ps)
	rc.mu.Unlock()
	if rc.cost > 0 {
		select {
		case <-time.After(rc.cost):
		case <-ctx.Done():
		}
	}
	for i, r := range batch {
		r.Result = result{Echo: string(r.Payload), Batch: n, Pos: i}
	}
}

func (rc *recorder) batches() [][]string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.runs)
}

func opts() Options {
	return Options{MaxBatchSize: 8, QueueSize: 64, PriorityLevels: 1, MaxInFlight: 1}
}

func newBatcher(t *testing.T, o Options, run Runner[result]) *Batcher[result] {
	t.Helper()
	b, err := New(o, run)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

// do submits payload and returns what the caller got.
func do(b *Batcher[result], ctx context.Context, key, payload string, items, prio int) (result, error) {
	var got result
	err := b.Do(ctx, Entry{Key: []byte(key), Payload: []byte(payload), Items: items, Tokens: items, Priority: prio},
		func(r *result) { got = *r })
	return got, err
}

func TestEachCallerGetsItsOwnResult(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rc := &recorder{cost: 10 * time.Millisecond}
		b := newBatcher(t, opts(), rc.run)
		var wg sync.WaitGroup
		errs := make([]error, 40)
		got := make([]result, 40)
		for i := range 40 {
			wg.Go(func() {
				got[i], errs[i] = do(b, context.Background(), "k", "p"+strconv.Itoa(i), 1, 0)
			})
		}
		wg.Wait()
		for i := range 40 {
			if errs[i] != nil || got[i].Echo != "p"+strconv.Itoa(i) {
				t.Fatalf("caller %d got %+v, %v", i, got[i], errs[i])
			}
		}
		// The first batch went alone (nothing else waited); the backlog
		// that formed meanwhile went in full batches.
		runs := rc.batches()
		total := 0
		for _, r := range runs {
			if len(r) > 8 {
				t.Fatalf("a batch of %d > max 8", len(r))
			}
			total += len(r)
		}
		if total != 40 || len(runs) > 7 {
			t.Fatalf("%d requests in %d batches: %v", total, len(runs), runs)
		}
	})
}

func TestOrderWithinABatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rc := &recorder{cost: 10 * time.Millisecond}
		b := newBatcher(t, opts(), rc.run)
		var wg sync.WaitGroup
		wg.Go(func() { do(b, context.Background(), "k", "first", 1, 0) })
		synctest.Wait() // "first" runs alone
		for i := range 5 {
			wg.Go(func() { do(b, context.Background(), "k", "q"+strconv.Itoa(i), 1, 0) })
			synctest.Wait() // arrivals in order
		}
		wg.Wait()
		want := [][]string{{"first"}, {"q0", "q1", "q2", "q3", "q4"}}
		if got := rc.batches(); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("batches %v, want %v", got, want)
		}
	})
}

func TestBounds(t *testing.T) {
	cases := []struct {
		name      string
		o         Options
		items     []int
		want      [][]string
		tooLarge  int // index of an entry refused as too large, or -1
		tokenOnly bool
	}{
		{name: "items", o: Options{MaxBatchSize: 4}, items: []int{3, 2, 2, 1}, want: [][]string{{"0"}, {"1", "2"}, {"3"}}, tooLarge: -1},
		{name: "tokens", o: Options{MaxBatchSize: 100, MaxTokens: 5}, items: []int{1, 3, 3, 2}, want: [][]string{{"0"}, {"1"}, {"2", "3"}}, tooLarge: -1},
		{name: "too large", o: Options{MaxBatchSize: 4}, items: []int{1, 5, 1}, want: [][]string{{"0"}, {"2"}}, tooLarge: 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				o := tc.o
				o.QueueSize, o.PriorityLevels, o.MaxInFlight = 64, 1, 1
				rc := &recorder{cost: 10 * time.Millisecond}
				b := newBatcher(t, o, rc.run)
				var wg sync.WaitGroup
				for i, n := range tc.items {
					wg.Go(func() {
						_, err := do(b, context.Background(), "k", strconv.Itoa(i), n, 0)
						if (i == tc.tooLarge) != errors.Is(err, ErrTooLarge) || err != nil && i != tc.tooLarge {
							t.Errorf("entry %d: %v", i, err)
						}
					})
					synctest.Wait()
				}
				wg.Wait()
				if got := rc.batches(); fmt.Sprint(got) != fmt.Sprint(tc.want) {
					t.Fatalf("batches %v, want %v", got, tc.want)
				}
			})
		})
	}
}

func TestKeysNeverShareABatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rc := &recorder{cost: 10 * time.Millisecond}
		b := newBatcher(t, opts(), rc.run)
		var wg sync.WaitGroup
		wg.Go(func() { do(b, context.Background(), "a", "a0", 1, 0) })
		synctest.Wait()
		for i := range 6 {
			key := []string{"a", "b"}[i%2]
			wg.Go(func() { do(b, context.Background(), key, key+strconv.Itoa(i), 1, 0) })
			synctest.Wait()
		}
		wg.Wait()
		for _, run := range rc.batches() {
			for _, p := range run {
				if p[0] != run[0][0] {
					t.Fatalf("keys mixed in one batch: %v", run)
				}
			}
		}
	})
}

func TestQueueDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := opts()
		o.MaxQueueDelay = 5 * time.Millisecond
		o.MaxBatchSize = 3
		rc := &recorder{}
		b := newBatcher(t, o, rc.run)

		// A lone caller waits the delay, and no more.
		start := time.Now()
		if _, err := do(b, context.Background(), "k", "lone", 1, 0); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d != 5*time.Millisecond {
			t.Fatalf("a lone request took %v, want the 5ms delay", d)
		}
		// Callers arriving within the delay share its batch; a full batch
		// goes at once.
		start = time.Now()
		var wg sync.WaitGroup
		for i := range 3 {
			if i > 0 {
				time.Sleep(time.Millisecond)
			}
			wg.Go(func() { do(b, context.Background(), "k", strconv.Itoa(i), 1, 0) })
		}
		wg.Wait()
		if d := time.Since(start); d != 2*time.Millisecond {
			t.Fatalf("a full batch went after %v, want when its third request came (2ms)", d)
		}
		if got := rc.batches(); fmt.Sprint(got) != "[[lone] [0 1 2]]" {
			t.Fatalf("batches %v", got)
		}
	})
}

func TestPriorityOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := opts()
		o.PriorityLevels = 3
		o.MaxBatchSize = 2
		rc := &recorder{cost: 10 * time.Millisecond}
		b := newBatcher(t, o, rc.run)
		var wg sync.WaitGroup
		wg.Go(func() { do(b, context.Background(), "k", "busy", 1, 0) })
		synctest.Wait()
		for i, p := range []int{2, 2, 1, 0, 1, 0} {
			wg.Go(func() { do(b, context.Background(), "k", fmt.Sprintf("p%d.%d", p, i), 1, p) })
			synctest.Wait()
		}
		wg.Wait()
		want := "[[busy] [p0.3 p0.5] [p1.2 p1.4] [p2.0 p2.1]]"
		if got := rc.batches(); fmt.Sprint(got) != want {
			t.Fatalf("batches %v, want %v", got, want)
		}
	})
}

func TestDeadlinePassesInTheQueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rc := &recorder{cost: 10 * time.Millisecond}
		b := newBatcher(t, opts(), rc.run)
		var wg sync.WaitGroup
		wg.Go(func() { do(b, context.Background(), "k", "busy", 1, 0) })
		synctest.Wait()
		var late error
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Millisecond)
			defer cancel()
			start := time.Now()
			_, late = do(b, ctx, "k", "late", 1, 0)
			if d := time.Since(start); d != 3*time.Millisecond {
				t.Errorf("the caller got its answer after %v, want at its deadline (3ms)", d)
			}
		})
		wg.Go(func() { do(b, context.Background(), "k", "kept", 1, 0) })
		wg.Wait()
		if !errors.Is(late, context.DeadlineExceeded) {
			t.Fatalf("late caller: %v", late)
		}
		if got := fmt.Sprint(rc.batches()); got != "[[busy] [kept]]" {
			t.Fatalf("batches %v: the expired request must not be sent", got)
		}
		if b.Waiting() != 0 {
			t.Fatalf("%d still waiting", b.Waiting())
		}
	})
}

func TestClientGoneBeforeDispatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rc := &recorder{cost: 10 * time.Millisecond}
		b := newBatcher(t, opts(), rc.run)
		var wg sync.WaitGroup
		wg.Go(func() { do(b, context.Background(), "k", "busy", 1, 0) })
		synctest.Wait()
		ctx, cancel := context.WithCancel(context.Background())
		var gone error
		wg.Go(func() { _, gone = do(b, ctx, "k", "gone", 1, 0) })
		synctest.Wait()
		cancel()
		synctest.Wait()
		if !errors.Is(gone, context.Canceled) {
			t.Fatalf("the caller that left got %v", gone)
		}
		wg.Wait()
		if got := fmt.Sprint(rc.batches()); got != "[[busy]]" {
			t.Fatalf("batches %v", got)
		}
	})
}

func TestClientGoneWhileItsBatchRuns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rc := &recorder{cost: 10 * time.Millisecond}
		b := newBatcher(t, opts(), rc.run)
		ctx, cancel := context.WithCancel(context.Background())
		var gone error
		done := make(chan struct{})
		go func() { _, gone = do(b, ctx, "k", "gone", 1, 0); close(done) }()
		synctest.Wait() // its batch runs
		cancel()
		<-done
		if !errors.Is(gone, context.Canceled) {
			t.Fatalf("got %v", gone)
		}
		// The batch ends later; its result for the caller is dropped and
		// the request reused safely.
		time.Sleep(20 * time.Millisecond)
		if got, err := do(b, context.Background(), "k", "next", 1, 0); err != nil || got.Echo != "next" {
			t.Fatalf("next caller got %+v, %v", got, err)
		}
	})
}

func TestQueueFull(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := opts()
		o.QueueSize = 2
		rc := &recorder{cost: 10 * time.Millisecond}
		b := newBatcher(t, o, rc.run)
		var wg sync.WaitGroup
		wg.Go(func() { do(b, context.Background(), "k", "busy", 1, 0) })
		synctest.Wait()
		for i := range 2 {
			wg.Go(func() { do(b, context.Background(), "k", strconv.Itoa(i), 1, 0) })
		}
		synctest.Wait()
		start := time.Now()
		if _, err := do(b, context.Background(), "k", "over", 1, 0); !errors.Is(err, ErrQueueFull) {
			t.Fatalf("over the queue size: %v", err)
		}
		if time.Since(start) != 0 {
			t.Fatal("a full queue must answer at once")
		}
		wg.Wait()
	})
}

func TestRunnerPanicFailsItsBatchOnly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBatcher(t, opts(), func(ctx context.Context, batch []*Request[result]) {
			if string(batch[0].Payload) == "boom" {
				panic("bad")
			}
			for _, r := range batch {
				r.Result.Echo = string(r.Payload)
			}
		})
		if _, err := do(b, context.Background(), "k", "boom", 1, 0); err == nil {
			t.Fatal("a panicking runner's callers must get an error")
		}
		if got, err := do(b, context.Background(), "k", "ok", 1, 0); err != nil || got.Echo != "ok" {
			t.Fatalf("after a panic: %+v, %v", got, err)
		}
	})
}

func TestCloseFailsTheQueued(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rc := &recorder{cost: time.Hour}
		b, err := New(opts(), rc.run)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make([]error, 3)
		for i := range 3 {
			wg.Go(func() { _, errs[i] = do(b, context.Background(), "k", strconv.Itoa(i), 1, 0) })
			synctest.Wait()
		}
		b.Close() // the running batch's context ends; the queued fail
		wg.Wait()
		if errs[0] != nil || !errors.Is(errs[1], ErrClosed) || !errors.Is(errs[2], ErrClosed) {
			t.Fatalf("errors %v", errs)
		}
		if _, err := do(b, context.Background(), "k", "after", 1, 0); !errors.Is(err, ErrClosed) {
			t.Fatalf("after Close: %v", err)
		}
	})
}

func TestInFlightBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := opts()
		o.MaxInFlight = 3
		o.MaxBatchSize = 1
		var mu sync.Mutex
		running, peak := 0, 0
		b := newBatcher(t, o, func(ctx context.Context, batch []*Request[result]) {
			mu.Lock()
			running++
			peak = max(peak, running)
			mu.Unlock()
			time.Sleep(time.Millisecond)
			mu.Lock()
			running--
			mu.Unlock()
		})
		var wg sync.WaitGroup
		for i := range 20 {
			wg.Go(func() { do(b, context.Background(), "k", strconv.Itoa(i), 1, 0) })
		}
		wg.Wait()
		if peak != 3 {
			t.Fatalf("peak %d batches in flight, want 3", peak)
		}
	})
}

func TestNewRejectsBadOptions(t *testing.T) {
	run := func(context.Context, []*Request[result]) {}
	for _, o := range []Options{
		{QueueSize: 1, PriorityLevels: 1, MaxInFlight: 1},
		{MaxBatchSize: 1, PriorityLevels: 1, MaxInFlight: 1},
		{MaxBatchSize: 1, QueueSize: 1, MaxInFlight: 1},
		{MaxBatchSize: 1, QueueSize: 1, PriorityLevels: 1},
		{MaxBatchSize: 1, QueueSize: 1, PriorityLevels: 1, MaxInFlight: 1, MaxTokens: -1},
		{MaxBatchSize: 1, QueueSize: 1, PriorityLevels: 1, MaxInFlight: 1, MaxQueueDelay: -1},
	} {
		if _, err := New(o, run); err == nil {
			t.Errorf("New(%+v) accepted", o)
		}
	}
}
