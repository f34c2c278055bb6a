// Package respool keeps long-lived resources (limiters, caches, batch
// queues, vector indexes, Redis and database clients, metric scrapers)
// alive across config reloads whose settings did not change, in the manner
// of Caddy's UsagePool.
//
// A Pool holds values by key, each with a count of its uses. The caller
// builds the key from the resource's kind and its settings (see Key), so
// that changed settings make a new key and therefore a new value. Uses are
// taken through a Lease, one per config generation: a generation that is
// being built takes a use of every resource its stages ask for, and when it
// retires (or its build fails half-way) Lease.Release gives all of them back
// at once. A value whose last use is given back is removed from the pool and,
// if it implements io.Closer, closed, exactly once and outside the pool's
// lock.
//
// A reload builds the new generation before the old one retires, so a
// resource whose key did not change goes from one use to two and back to
// one: it is never closed and the new generation gets the same instance.
//
// All methods are safe for concurrent use.
package respool

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
)

// ErrReleased is returned by Get on a lease that was already released.
var ErrReleased = errors.New("respool: the lease was already released")

// Pool is a set of keyed, reference-counted values. The zero Pool is not
// usable; make one with New. A server keeps one Pool for its whole life.
type Pool struct {
	mu      sync.Mutex
	entries map[string]*entry
}

// entry is one value of the pool. ready is closed when the constructor has
// returned; val and err are written before that and only read after it.
// refs is guarded by the pool's mutex.
type entry struct {
	key   string
	ready chan struct{}
	val   any
	err   error
	refs  int
}

// New returns an empty pool.
func New() *Pool { return &Pool{entries: map[string]*entry{}} }

// Len returns the number of values in the pool, constructed or being
// constructed.
func (p *Pool) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.entries)
}

// Refs returns the number of uses of the value under key (0 when there is
// none), for tests and diagnostics.
func (p *Pool) Refs(key string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if e := p.entries[key]; e != nil {
		return e.refs
	}
	return 0
}

// LoadOrNew returns the value under key, calling newFn to construct it if
// the pool has none, and takes one use of it. The caller gives the use back
// by calling release (once; further calls do nothing). Most callers use a
// Lease instead, which remembers the releases.
//
// Only the first caller for a key runs newFn; concurrent callers for the
// same key wait for it, callers for other keys do not. An error (or a panic,
// turned into an error) of newFn is returned to the callers that waited for
// it and is not kept: the next call tries again. A value under key whose
// type is not T is an error (two kinds of resource sharing a key is a bug of
// the callers' keys), and takes no use.
func LoadOrNew[T any](p *Pool, key string, newFn func() (T, error)) (v T, release func() error, err error) {
	p.mu.Lock()
	e := p.entries[key]
	creator := e == nil
	if creator {
		e = &entry{key: key, ready: make(chan struct{})}
		p.entries[key] = e
	}
	e.refs++
	p.mu.Unlock()

	if creator {
		p.construct(e, func() (any, error) { return newFn() })
	} else {
		<-e.ready
	}
	if e.err != nil {
		// The creator removed the failed entry; the uses taken on it count
		// for nothing.
		return v, nil, e.err
	}
	tv, ok := e.val.(T)
	if !ok {
		_ = p.release(e)
		return v, nil, fmt.Errorf("respool: key %q holds a %T, not a %T", key, e.val, v)
	}
	var once sync.Once
	return tv, func() (err error) {
		once.Do(func() { err = p.release(e) })
		return err
	}, nil
}

// construct runs newFn for e and publishes its result. A failed entry is
// removed from the pool before its waiters are woken, so that a later call
// constructs afresh.
func (p *Pool) construct(e *entry, newFn func() (any, error)) {
	defer close(e.ready)
	defer func() {
		if r := recover(); r != nil {
			e.val, e.err = nil, fmt.Errorf("respool: constructing %q panicked: %v", e.key, r)
		}
		if e.err != nil {
			p.mu.Lock()
			if p.entries[e.key] == e {
				delete(p.entries, e.key)
			}
			p.mu.Unlock()
		}
	}()
	v, err := newFn()
	if err == nil && v == nil {
		err = fmt.Errorf("respool: constructing %q returned nil", e.key)
	}
	e.val, e.err = v, err
}

// release gives back one use of e and closes its value after the last one.
func (p *Pool) release(e *entry) error {
	p.mu.Lock()
	e.refs--
	last := e.refs == 0
	if last && p.entries[e.key] == e {
		delete(p.entries, e.key)
	}
	p.mu.Unlock()
	if !last {
		return nil
	}
	if c, ok := e.val.(io.Closer); ok {
		if err := c.Close(); err != nil {
			return fmt.Errorf("closing %q: %w", e.key, err)
		}
	}
	return nil
}

// Lease is the uses of one holder, typically a config generation: every
// value taken with Get is given back by one call to Release. Its zero value
// is not usable; make one with Pool.Lease.
type Lease struct {
	pool     *Pool
	mu       sync.Mutex
	releases []func() error
	released bool
}

// Lease returns a new, empty lease on p.
func (p *Pool) Lease() *Lease { return &Lease{pool: p} }

// Get is LoadOrNew whose use is held by l until l.Release. Asking twice for
// one key takes two uses, both given back by Release.
func Get[T any](l *Lease, key string, newFn func() (T, error)) (T, error) {
	var zero T
	l.mu.Lock()
	released := l.released
	l.mu.Unlock()
	if released {
		return zero, ErrReleased
	}
	v, release, err := LoadOrNew(l.pool, key, newFn)
	if err != nil {
		return zero, err
	}
	l.mu.Lock()
	if l.released { // Release ran while we constructed
		l.mu.Unlock()
		_ = release()
		return zero, ErrReleased
	}
	l.releases = append(l.releases, release)
	l.mu.Unlock()
	return v, nil
}

// Release gives back every use taken through l, closing the values whose
// last use it was, in the reverse order of their Get calls. It returns the
// values' Close errors, joined. Calls after the first do nothing.
func (l *Lease) Release() error {
	l.mu.Lock()
	rs := l.releases
	l.releases, l.released = nil, true
	l.mu.Unlock()
	var errs []error
	for i := len(rs) - 1; i >= 0; i-- {
		errs = append(errs, rs[i]())
	}
	return errors.Join(errs...)
}

// Key returns a pool key for a resource of kind with the given settings:
// kind, a colon and a hash of the settings' JSON encoding (struct fields in
// order, map keys sorted), so equal settings give equal keys and the key
// shows no secret that the settings hold. Settings that cannot be encoded
// to JSON are an error.
func Key(kind string, settings any) (string, error) {
	b, err := json.Marshal(settings)
	if err != nil {
		return "", fmt.Errorf("respool: encoding the settings of %s: %w", kind, err)
	}
	sum := sha256.Sum256(b)
	return kind + ":" + hex.EncodeToString(sum[:16]), nil
}
