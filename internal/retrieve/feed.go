package retrieve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Change is one entry of a ChangeFeed: the document ID as of sequence
// number Seq, or its deletion (a tombstone) when Doc is nil.
type Change struct {
	Seq uint64
	ID  string
	// Doc is the document, its Seq equal to Seq; nil when it was deleted.
	Doc *StoredDoc
}

// ChangeFeed is the optional side of a Store shared by replicas (pgstore):
// each replica's Collection applies the changes the others made (Sync,
// Follow). The store numbers every Put and Delete itself (see Store.Put),
// increasing in the order the changes were committed, and keeps a
// tombstone for each deletion, numbered too, at least for a retention the
// store documents.
type ChangeFeed interface {
	// Changes calls fn, by increasing Seq, with the current state of every
	// document changed after afterSeq: its latest version, or a tombstone,
	// once per document in one snapshot (a document changed again while
	// Changes runs may come again, newer). It stops at fn's first error.
	// It returns through, a number such that every change not yet
	// delivered will be numbered above it, for the next call's afterSeq.
	// afterSeq 0 asks for everything: all live documents, and whichever
	// tombstones are kept. When tombstones numbered after afterSeq were
	// pruned, Changes returns an error wrapping ErrChangesPruned: the
	// caller must start again from 0, and take every document that call
	// does not yield as deleted.
	Changes(ctx context.Context, afterSeq uint64, fn func(Change) error) (through uint64, err error)
	// Watch calls notify, from one goroutine, whenever the collection may
	// have changed (a change was committed, by this replica or another),
	// until ctx is done, then returns ctx's error. notify may be called for
	// nothing, and more than once for one change; it must not block. A
	// watch that loses its connection reconnects by itself and calls
	// notify once it listens again, since changes made meanwhile were not
	// announced. It returns another error only when it cannot go on.
	Watch(ctx context.Context, notify func()) error
}

// ErrChangesPruned is wrapped by ChangeFeed.Changes when tombstones the
// caller has not seen were pruned.
var ErrChangesPruned = errors.New("retrieve: the change feed's tombstones after that sequence number were pruned")

var errNoFeed = errors.New("retrieve: the collection's store is not a ChangeFeed (not shared by replicas)")

// Sync applies the changes other writers made to the collection's shared
// store (a ChangeFeed) since the last Sync, or since New: an upserted
// document replaces this replica's copy, a tombstone removes it, each
// atomically as Add and Delete do, and nothing is written back to the
// store. It returns the number of documents it added, replaced or
// removed. A change this collection already holds is skipped without
// re-indexing: its own Adds and Deletes come back through the feed that
// way, as do changes a concurrent Add or Delete superseded. When the feed
// pruned tombstones this replica has not seen, Sync reads the whole store
// again and removes the documents it no longer holds. A document that
// cannot be applied (corrupt, or embedded by another embedder) stops Sync
// with an error, before it: the next Sync starts with it again.
// Syncs are serialized; Follow runs them for a replica.
func (c *Collection) Sync(ctx context.Context) (int, error) {
	feed, ok := c.store.(ChangeFeed)
	if !ok {
		return 0, errNoFeed
	}
	c.syncMu.Lock()
	defer c.syncMu.Unlock()
	n := 0
	through, err := feed.Changes(ctx, c.cursor, func(ch Change) error {
		applied, err := c.applyChange(ch)
		if err != nil {
			return err
		}
		if applied {
			n++
		}
		// Every change numbered up to ch.Seq has been delivered.
		c.cursor = max(c.cursor, ch.Seq)
		return nil
	})
	if errors.Is(err, ErrChangesPruned) {
		m, err := c.syncFull(ctx, feed)
		return n + m, err
	}
	if err != nil {
		return n, fmt.Errorf("retrieve: syncing with the store: %w", err)
	}
	c.advance(through)
	return n, nil
}

// syncFull applies the whole state of the feed and removes what it does
// not hold; the caller holds syncMu. The cursor moves only once the whole
// pass is applied, so a failed pass is made again in full.
func (c *Collection) syncFull(ctx context.Context, feed ChangeFeed) (int, error) {
	for attempt := 0; ; attempt++ {
		seen := map[string]bool{}
		n := 0
		through, err := feed.Changes(ctx, 0, func(ch Change) error {
			applied, err := c.applyChange(ch)
			if err != nil {
				return err
			}
			if applied {
				n++
			}
			seen[ch.ID] = ch.Doc != nil
			return nil
		})
		if errors.Is(err, ErrChangesPruned) && attempt < 3 {
			// Pruned while the pass ran (a pass reads several snapshots).
			continue
		}
		if err != nil {
			return n, err
		}
		// What the pass did not yield live is deleted, unless this replica
		// has a version committed after the pass's snapshots.
		c.wmu.Lock()
		var stale []*docRec
		c.mu.RLock()
		for id, d := range c.docs {
			if !seen[id] && d.seq <= through {
				stale = append(stale, d)
			}
		}
		c.mu.RUnlock()
		for _, d := range stale {
			c.remove(d)
			n++
		}
		c.wmu.Unlock()
		c.advance(through)
		return n, nil
	}
}

// advance moves the cursor to through and forgets this replica's
// deletions the feed has delivered; the caller holds syncMu.
func (c *Collection) advance(through uint64) {
	c.cursor = max(c.cursor, through)
	c.wmu.Lock()
	for id, s := range c.gone {
		if s <= c.cursor {
			delete(c.gone, id)
		}
	}
	c.wmu.Unlock()
}

// applyChange applies one change of the feed unless the collection holds
// it or something newer, and reports whether it did.
func (c *Collection) applyChange(ch Change) (bool, error) {
	if ch.Doc == nil {
		c.wmu.Lock()
		defer c.wmu.Unlock()
		c.mu.RLock()
		d := c.docs[ch.ID]
		c.mu.RUnlock()
		if d == nil || d.seq >= ch.Seq {
			return false, nil
		}
		c.remove(d)
		c.seq = max(c.seq, ch.Seq)
		return true, nil
	}
	sd := ch.Doc
	if sd.ID != ch.ID || sd.Seq != ch.Seq {
		return false, fmt.Errorf("change %d: document %q numbered %d, for %q", ch.Seq, sd.ID, sd.Seq, ch.ID)
	}
	if c.holds(sd.ID, sd.Seq) {
		return false, nil // the fast path of own writes: no re-indexing
	}
	if err := c.checkEmbedder(sd); err != nil {
		return false, err
	}
	p, err := c.prepareStored(sd)
	if err != nil {
		return false, fmt.Errorf("document %q: %w", sd.ID, err)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	// Again under wmu: an Add or Delete may have superseded it meanwhile
	// (a Delete of this replica leaves no document, but its number in gone).
	if c.holds(sd.ID, sd.Seq) || c.gone[sd.ID] >= sd.Seq {
		return false, nil
	}
	c.apply(p)
	c.seq = max(c.seq, sd.Seq)
	return true, nil
}

// holds reports whether the collection has document id at seq or later.
func (c *Collection) holds(id string, seq uint64) bool {
	c.mu.RLock()
	d := c.docs[id]
	c.mu.RUnlock()
	return d != nil && d.seq >= seq
}

// FollowPoll is how often Follow syncs without being notified: a safety
// net for notifications lost without the watch noticing.
const FollowPoll = 5 * time.Second

// Follow keeps c in step with its shared store (which must be a
// ChangeFeed): it runs the store's Watch, and a Sync after each
// notification (a burst of them makes one Sync), after each reconnection
// of the watch, and every FollowPoll. It logs failures to log (nil: not
// logged; give it the collection's name as an attribute) and retries them
// at the next notification or poll. It syncs once as it starts.
//
// Follow owns two goroutines; they end when ctx is done or stop is
// called, and stop returns once they have (stop may be called more than
// once, and after ctx is done).
func Follow(ctx context.Context, c *Collection, log *slog.Logger) (stop func(), err error) {
	feed, ok := c.store.(ChangeFeed)
	if !ok {
		return nil, errNoFeed
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(ctx)
	kick := make(chan struct{}, 1)
	notify := func() {
		select {
		case kick <- struct{}{}:
		default: // a Sync is already due; it will see this change too
		}
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := feed.Watch(ctx, notify); err != nil && ctx.Err() == nil {
			log.Error("retrieve: watching the store for changes failed; polling only", "every", FollowPoll, "err", err)
		}
	})
	wg.Go(func() { c.follow(ctx, kick, log) })
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			wg.Wait()
		})
	}, nil
}

func (c *Collection) follow(ctx context.Context, kick <-chan struct{}, log *slog.Logger) {
	t := time.NewTimer(FollowPoll)
	defer t.Stop()
	for {
		if n, err := c.Sync(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			log.Warn("retrieve: syncing with the store failed; retrying", "err", err)
		} else if n > 0 {
			log.Debug("retrieve: synced with the store", "changes", n)
		}
		t.Reset(FollowPoll)
		select {
		case <-ctx.Done():
			return
		case <-kick:
		case <-t.C:
		}
	}
}
