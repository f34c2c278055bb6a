package retrieve_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"switchyard/internal/embed"
	"switchyard/internal/retrieve"
	"switchyard/internal/retrieve/storetest"
)

// TestMain checks that no test leaves a goroutine behind (Follow's).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestDirStoreConformance(t *testing.T) {
	var mu sync.Mutex
	dirs := map[retrieve.Store]string{}
	storetest.Run(t, storetest.Backend{
		New: func(t *testing.T) (retrieve.Store, func(t *testing.T) retrieve.Store) {
			dir := t.TempDir()
			open := func(t *testing.T) retrieve.Store {
				s, err := retrieve.OpenDir(dir)
				if err != nil {
					t.Fatal(err)
				}
				mu.Lock()
				dirs[s] = dir
				mu.Unlock()
				return s
			}
			return open(t), open
		},
		Corrupt: func(t *testing.T, s retrieve.Store, id string) {
			mu.Lock()
			dir := dirs[s]
			mu.Unlock()
			h := sha256.Sum256([]byte(id))
			p := filepath.Join(dir, "docs", hex.EncodeToString(h[:16])+".doc")
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			b[len(b)/2] ^= 0x20
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
		},
	})
}

func memBackend() storetest.Backend {
	return storetest.Backend{
		New: func(t *testing.T) (retrieve.Store, func(t *testing.T) retrieve.Store) {
			m := storetest.NewMem()
			return m, func(*testing.T) retrieve.Store { return m }
		},
		Corrupt: func(t *testing.T, s retrieve.Store, id string) { s.(*storetest.Mem).Corrupt(id) },
	}
}

func TestMemConformance(t *testing.T) {
	storetest.Run(t, memBackend())
	storetest.RunFeed(t, storetest.FeedBackend{
		New:   memBackend().New,
		Prune: func(t *testing.T, s retrieve.Store) { s.(*storetest.Mem).Prune() },
	})
}

// countingFeed counts Changes calls; the first blocks until release is
// closed.
type countingFeed struct {
	*storetest.Mem
	calls   atomic.Int32
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

func (f *countingFeed) Changes(ctx context.Context, after uint64, fn func(retrieve.Change) error) (uint64, error) {
	if f.calls.Add(1) == 2 { // the first is New's load
		f.once.Do(func() { close(f.entered) })
		<-f.release
	}
	return f.Mem.Changes(ctx, after, fn)
}

// TestFollowCoalesces: the notifications of a burst of changes made while
// a Sync runs bring one more Sync, not one each.
func TestFollowCoalesces(t *testing.T) {
	ctx := context.Background()
	f := &countingFeed{Mem: storetest.NewMem(), entered: make(chan struct{}), release: make(chan struct{})}
	c, err := retrieve.New(ctx, retrieve.Options{Embedder: embed.NewBuiltin(16), Store: f})
	if err != nil {
		t.Fatal(err)
	}
	other, err := retrieve.New(ctx, retrieve.Options{Embedder: embed.NewBuiltin(16), Store: f.Mem})
	if err != nil {
		t.Fatal(err)
	}
	stop, err := retrieve.Follow(ctx, c, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	<-f.entered // Follow's first Sync is running
	for i := range 50 {
		if _, err := other.Add(ctx, retrieve.Document{ID: string(rune('a' + i%26)), Content: []byte("burst of changes")}); err != nil {
			t.Fatal(err)
		}
	}
	close(f.release)
	storetest.Eventually(t, 5*time.Second, "the burst applied", func() bool { return c.Stats().Docs == 26 })
	time.Sleep(50 * time.Millisecond)
	// New's load, the first Sync, and one or two for the 50 notifications
	// (one may have been taken before the first Sync started).
	if n := f.calls.Load(); n > 4 {
		t.Errorf("%d Changes calls for a burst of 50 changes", n)
	}
	stop()
	stop() // stop may be called twice
}

// TestFollowStops: Follow ends with its context, and stop returns after
// its goroutines have (goleak checks at the end of the package's tests).
func TestFollowStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	c, err := retrieve.New(ctx, retrieve.Options{Embedder: embed.NewBuiltin(16), Store: storetest.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	stop, err := retrieve.Follow(ctx, c, nil)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	done := make(chan struct{})
	go func() { stop(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("stop did not return after the context was cancelled")
	}
}

func TestSyncNeedsFeed(t *testing.T) {
	ctx := context.Background()
	dir, err := retrieve.OpenDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []retrieve.Store{nil, dir} {
		c, err := retrieve.New(ctx, retrieve.Options{Embedder: embed.NewBuiltin(16), Store: s})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Sync(ctx); err == nil {
			t.Errorf("Sync with store %T: no error", s)
		}
		if _, err := retrieve.Follow(ctx, c, nil); err == nil {
			t.Errorf("Follow with store %T: no error", s)
		}
	}
}

// badFeed yields a change whose document another embedder made, then a
// good one.
type badFeed struct{ *storetest.Mem }

func (f badFeed) Changes(ctx context.Context, after uint64, fn func(retrieve.Change) error) (uint64, error) {
	return f.Mem.Changes(ctx, after, func(ch retrieve.Change) error {
		if ch.Doc != nil && ch.ID == "bad" {
			ch.Doc.Embedder = "other"
		}
		return fn(ch)
	})
}

// TestSyncStopsAtBadDocument: Sync applies the changes before a document
// it cannot apply, fails, and starts with that document next time.
func TestSyncStopsAtBadDocument(t *testing.T) {
	ctx := context.Background()
	m := storetest.NewMem()
	w, _ := retrieve.New(ctx, retrieve.Options{Embedder: embed.NewBuiltin(16), Store: m})
	r, err := retrieve.New(ctx, retrieve.Options{Embedder: embed.NewBuiltin(16), Store: badFeed{m}})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"good1", "bad", "good2"} {
		if _, err := w.Add(ctx, retrieve.Document{ID: id, Content: []byte("text " + id)}); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		n, err := r.Sync(ctx)
		if n > 1 || err == nil || errors.Is(err, context.Canceled) {
			t.Errorf("Sync: %d %v", n, err)
		}
		if _, ok := r.Doc("good1"); !ok {
			t.Error("the change before the bad one was not applied")
		}
		if _, ok := r.Doc("good2"); ok {
			t.Error("the change after the bad one was applied")
		}
	}
	if _, err := w.Delete(ctx, "bad"); err != nil {
		t.Fatal(err)
	}
	if n, err := r.Sync(ctx); n != 1 || err != nil {
		t.Errorf("Sync once the bad document is gone: %d %v", n, err)
	}
}
