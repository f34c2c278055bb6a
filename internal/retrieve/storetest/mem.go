package storetest

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"

	"switchyard/internal/retrieve"
)

// Mem is a retrieve.Store and retrieve.ChangeFeed in memory: one shared
// collection that several Collections (replicas) of one process may use,
// for tests of what builds on replicas without a PostgreSQL server. It
// numbers changes as pgstore does, keeps tombstones until Prune, and
// keeps documents as JSON and vector copies, so that what a caller passes
// or receives is never shared.
type Mem struct {
	mu      sync.Mutex
	seq     uint64
	pruned  uint64
	rows    map[string]*memRow
	watches map[int]func()
	nextW   int
}

type memRow struct {
	seq     uint64
	deleted bool
	js      []byte
	vecs    [][]float32
}

var (
	_ retrieve.Store      = (*Mem)(nil)
	_ retrieve.ChangeFeed = (*Mem)(nil)
)

// NewMem returns an empty Mem.
func NewMem() *Mem {
	return &Mem{rows: map[string]*memRow{}, watches: map[int]func(){}}
}

// Put stores a copy of d, numbering it.
func (m *Mem) Put(ctx context.Context, d *retrieve.StoredDoc) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(d.Vectors) != len(d.Chunks) {
		return fmt.Errorf("document %q: %d vectors for %d chunks", d.ID, len(d.Vectors), len(d.Chunks))
	}
	vecs := make([][]float32, len(d.Vectors))
	for i, v := range d.Vectors {
		if len(v) != d.Dim {
			return fmt.Errorf("document %q: vector %d has %d components, want %d", d.ID, i, len(v), d.Dim)
		}
		vecs[i] = slices.Clone(v)
	}
	c := *d
	c.Seq = 0
	js, err := json.Marshal(&c)
	if err != nil {
		return fmt.Errorf("encoding document %q: %w", d.ID, err)
	}
	m.mu.Lock()
	m.seq++
	m.rows[d.ID] = &memRow{seq: m.seq, js: js, vecs: vecs}
	d.Seq = m.seq
	m.mu.Unlock()
	m.notify()
	return nil
}

// Delete replaces the document id by a tombstone.
func (m *Mem) Delete(ctx context.Context, id string) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	m.mu.Lock()
	r := m.rows[id]
	if r == nil || r.deleted {
		m.mu.Unlock()
		return 0, nil
	}
	m.seq++
	m.rows[id] = &memRow{seq: m.seq, deleted: true}
	seq := m.seq
	m.mu.Unlock()
	m.notify()
	return seq, nil
}

// Scan yields the live documents, by increasing Seq.
func (m *Mem) Scan(ctx context.Context, fn func(*retrieve.StoredDoc) error) error {
	_, err := m.changes(ctx, 0, false, func(ch retrieve.Change) error { return fn(ch.Doc) })
	return err
}

// Changes implements retrieve.ChangeFeed, in one snapshot.
func (m *Mem) Changes(ctx context.Context, afterSeq uint64, fn func(retrieve.Change) error) (uint64, error) {
	return m.changes(ctx, afterSeq, true, fn)
}

func (m *Mem) changes(ctx context.Context, after uint64, tombstones bool, fn func(retrieve.Change) error) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return after, err
	}
	type row struct {
		id string
		memRow
	}
	m.mu.Lock()
	if after > 0 && after < m.pruned {
		m.mu.Unlock()
		return after, fmt.Errorf("after %d, pruned through %d: %w", after, m.pruned, retrieve.ErrChangesPruned)
	}
	var rows []row
	for id, r := range m.rows {
		if r.seq > after && (tombstones || !r.deleted) {
			rows = append(rows, row{id, *r})
		}
	}
	through := max(after, m.seq)
	m.mu.Unlock()
	slices.SortFunc(rows, func(a, b row) int { return cmp.Compare(a.seq, b.seq) })
	for _, r := range rows {
		ch := retrieve.Change{Seq: r.seq, ID: r.id}
		if !r.deleted {
			d := new(retrieve.StoredDoc)
			dec := json.NewDecoder(bytes.NewReader(r.js))
			dec.DisallowUnknownFields()
			if err := dec.Decode(d); err != nil {
				return after, fmt.Errorf("document %q: decoding: %w", r.id, err)
			}
			d.Seq = r.seq
			d.Vectors = make([][]float32, len(r.vecs))
			for i, v := range r.vecs {
				d.Vectors[i] = slices.Clone(v)
			}
			ch.Doc = d
		}
		if err := fn(ch); err != nil {
			return after, err
		}
	}
	return through, nil
}

// Watch calls notify after each change until ctx is done, and once as it
// starts.
func (m *Mem) Watch(ctx context.Context, notify func()) error {
	m.mu.Lock()
	w := m.nextW
	m.nextW++
	m.watches[w] = notify
	m.mu.Unlock()
	notify()
	<-ctx.Done()
	m.mu.Lock()
	delete(m.watches, w)
	m.mu.Unlock()
	return ctx.Err()
}

func (m *Mem) notify() {
	m.mu.Lock()
	fns := make([]func(), 0, len(m.watches))
	for _, f := range m.watches {
		fns = append(fns, f)
	}
	m.mu.Unlock()
	for _, f := range fns {
		f()
	}
}

// Prune drops every tombstone.
func (m *Mem) Prune() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, r := range m.rows {
		if r.deleted {
			m.pruned = max(m.pruned, r.seq)
			delete(m.rows, id)
		}
	}
}

// Corrupt damages the stored document id so that reading it fails.
func (m *Mem) Corrupt(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r := m.rows[id]; r != nil {
		r.js = []byte(`{"id":`)
	}
}
