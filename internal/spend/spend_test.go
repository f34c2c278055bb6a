package spend

import (
	"context"
	"errors"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"switchyard/internal/store"
	"switchyard/internal/testsvc"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testsvc.StopAll()
	os.Exit(code)
}

func stores(t *testing.T) map[string]func() store.Options {
	dir := t.TempDir()
	return map[string]func() store.Options{
		"sqlite":   func() store.Options { return store.Options{DataDir: dir} },
		"postgres": func() store.Options { return store.Options{PostgresDSN: testsvc.Postgres(t)} },
	}
}

func open(t *testing.T, o store.Options) store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func ledger(t *testing.T, st store.Store) *Ledger {
	t.Helper()
	l, err := New(context.Background(), Options{Store: st, FlushInterval: time.Hour, RefreshInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func TestPeriods(t *testing.T) {
	at := time.Date(2026, 12, 31, 23, 59, 0, 0, time.FixedZone("x", 3600))
	if got := Day.Start(at); !got.Equal(time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("day start %v", got)
	}
	if got := Month.Start(at); !got.Equal(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("month start %v", got)
	}
}

func TestLedger(t *testing.T) {
	for name, opts := range stores(t) {
		t.Run(name, func(t *testing.T) {
			o := opts()
			st := open(t, o)
			l := ledger(t, st)
			ctx := context.Background()
			lastMinute := time.Date(2026, 11, 30, 23, 59, 0, 0, time.UTC)
			l.Add(Key, "k", lastMinute, 100, 10, 1)
			l.Add(Tenant, "t", lastMinute, 100, 10, 1)
			if got := l.Spent(Key, "k", Day, lastMinute); got != 100 {
				t.Errorf("spent before a flush: %d", got)
			}
			// Over the boundary: a new day and a new month start at 0.
			next := lastMinute.Add(2 * time.Minute)
			if d, m := l.Spent(Key, "k", Day, next), l.Spent(Key, "k", Month, next); d != 0 || m != 0 {
				t.Errorf("the next day: day %d month %d, want 0 0", d, m)
			}
			l.Add(Key, "k", next, 7, 1, 1)
			if err := l.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			if got := l.Spent(Key, "k", Month, lastMinute); got != 100 {
				t.Errorf("November after a flush: %d", got)
			}
			if got := l.Spent(Key, "k", Month, next); got != 7 {
				t.Errorf("December after a flush: %d", got)
			}
			// Replicas and restarts, in the current periods.
			now := time.Now()
			l.Add(Key, "r", now, 7, 1, 1)
			if err := l.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			st2 := open(t, o)
			l2 := ledger(t, st2)
			if got := l2.Spent(Key, "r", Day, now); got != 7 {
				t.Errorf("the other replica at start: %d, want 7", got)
			}
			l2.Add(Key, "r", now, 3, 1, 1)
			if err := l2.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			if err := l.refresh(ctx, now); err != nil {
				t.Fatal(err)
			}
			if got := l.Spent(Key, "r", Day, now); got != 10 {
				t.Errorf("after a refresh: %d, want 7+3", got)
			}
			l.Add(Key, "r", now, 5, 1, 1)
			l.Close() // flushes
			l3 := ledger(t, open(t, o))
			if got := l3.Spent(Key, "r", Month, now); got != 15 {
				t.Errorf("after a restart: %d, want 15", got)
			}
		})
	}
}

type flaky struct {
	store.Store
	fail atomic.Bool
}

func (f *flaky) AddSpend(ctx context.Context, d []store.SpendDelta) ([]store.SpendRow, error) {
	if f.fail.Load() {
		return nil, errors.New("store down")
	}
	return f.Store.AddSpend(ctx, d)
}

func TestLedgerKeepsSpendWhileTheStoreFails(t *testing.T) {
	f := &flaky{Store: open(t, store.Options{DataDir: t.TempDir()})}
	l := ledger(t, f)
	now := time.Now()
	f.fail.Store(true)
	l.Add(Key, "k", now, 50, 1, 1)
	if err := l.Flush(context.Background()); err == nil {
		t.Fatal("the flush did not fail")
	}
	l.Add(Key, "k", now, 25, 1, 1)
	if got := l.Spent(Key, "k", Day, now); got != 75 {
		t.Errorf("spent while failing: %d", got)
	}
	f.fail.Store(false)
	if err := l.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	rows, _ := f.ListSpend(context.Background(), store.SpendFilter{Scope: "key", Period: "day"})
	if len(rows) != 1 || rows[0].NanoUSD != 75 || rows[0].Requests != 2 || l.Spent(Key, "k", Day, now) != 75 {
		t.Errorf("after recovery: %+v, spent %d", rows, l.Spent(Key, "k", Day, now))
	}
}

func BenchmarkLedger(b *testing.B) {
	st, _ := store.Open(context.Background(), store.Options{DataDir: b.TempDir()})
	defer st.Close()
	l, _ := New(context.Background(), Options{Store: st, FlushInterval: time.Hour, RefreshInterval: time.Hour})
	defer l.Close()
	now := time.Now()
	l.Add(Key, "k", now, 1, 1, 1)
	b.ReportAllocs()
	for b.Loop() {
		if l.Spent(Key, "k", Month, now) < 0 {
			b.Fatal()
		}
		l.Add(Key, "k", now, 1, 1, 1)
	}
}
