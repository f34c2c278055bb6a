package retrieval

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
)

// apiBackend is where the Files and Vector Stores APIs keep what survives
// a restart: the files (a record and the bytes as uploaded) and the
// records of vector stores, attachments and file batches. localBackend
// keeps them in data_dir/files, pgBackend in PostgreSQL
// (store.postgres.dsn), shared by replicas.
//
// Records are JSON values under (kind, key); a key is made of ids (file
// ids, vector store ids, batch ids, joined with '/'). Get and the file
// content answer errNotFound for what is not there. Implementations are
// safe for concurrent use.
type apiBackend interface {
	// PutFile stores a new file: its content and its record, both or
	// neither.
	PutFile(ctx context.Context, id string, rec, content []byte) error
	// FileContent returns the bytes of a file.
	FileContent(ctx context.Context, id string) ([]byte, error)
	// DeleteFile removes the file's record and content.
	DeleteFile(ctx context.Context, id string) error
	Put(ctx context.Context, kind, key string, val []byte) error
	Get(ctx context.Context, kind, key string) ([]byte, error)
	Delete(ctx context.Context, kind, key string) error
	// List returns the records of kind whose key starts with prefix, by
	// key.
	List(ctx context.Context, kind, prefix string) ([]record, error)
	Close() error
}

// record is one stored record.
type record struct {
	Key string
	Val []byte
}

// errNotFound is a record or file that is not there.
var errNotFound = errors.New("not found")

// The record kinds.
const (
	kindFile   = "file"
	kindVS     = "vs"
	kindAttach = "attach"
	kindBatch  = "batch"
)

var recordKinds = []string{kindFile, kindVS, kindAttach, kindBatch}

// localBackend keeps the files in dir/content/<id> and each record in
// dir/records/<kind>/<escaped key>.json, every write to a temporary file,
// synced and renamed into place (then the directory synced), so that a
// crash leaves the old version or the new one. The records are read once
// at open and served from memory: one process owns the directory (a lock
// file, as for local collections).
type localBackend struct {
	dir    string
	unlock func() error

	mu   sync.RWMutex
	recs map[string]map[string][]byte // kind -> key -> value
}

func openLocalBackend(dir string) (*localBackend, error) {
	unlock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	b := &localBackend{dir: dir, unlock: unlock, recs: map[string]map[string][]byte{}}
	for _, sub := range []string{"content", "records"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			unlock()
			return nil, fmt.Errorf("creating %s: %w", filepath.Join(dir, sub), err)
		}
	}
	for _, kind := range recordKinds {
		m := map[string][]byte{}
		b.recs[kind] = m
		kdir := filepath.Join(dir, "records", kind)
		if err := os.MkdirAll(kdir, 0o700); err != nil {
			unlock()
			return nil, fmt.Errorf("creating %s: %w", kdir, err)
		}
		ents, err := os.ReadDir(kdir)
		if err != nil {
			unlock()
			return nil, err
		}
		for _, e := range ents {
			name := e.Name()
			if e.IsDir() || !strings.HasSuffix(name, ".json") {
				continue // a temporary file of a write a crash cut short
			}
			key, ok := unescapeKey(strings.TrimSuffix(name, ".json"))
			if !ok {
				continue
			}
			v, err := os.ReadFile(filepath.Join(kdir, name))
			if err != nil {
				unlock()
				return nil, err
			}
			m[key] = v
		}
	}
	// A file's record is written after its content: a record without
	// content is impossible, but content without a record (a crash in
	// between, or a delete cut short) is garbage.
	ents, err := os.ReadDir(filepath.Join(dir, "content"))
	if err == nil {
		for _, e := range ents {
			id, ok := unescapeKey(e.Name())
			if ok && b.recs[kindFile][id] == nil {
				_ = os.Remove(filepath.Join(dir, "content", e.Name()))
			}
		}
	}
	return b, nil
}

func (b *localBackend) contentPath(id string) string {
	return filepath.Join(b.dir, "content", escapeKey(id))
}

func (b *localBackend) recordPath(kind, key string) string {
	return filepath.Join(b.dir, "records", kind, escapeKey(key)+".json")
}

func (b *localBackend) PutFile(ctx context.Context, id string, rec, content []byte) error {
	if err := writeFileAtomic(b.contentPath(id), content); err != nil {
		return err
	}
	if err := b.Put(ctx, kindFile, id, rec); err != nil {
		_ = os.Remove(b.contentPath(id))
		return err
	}
	return nil
}

func (b *localBackend) FileContent(_ context.Context, id string) ([]byte, error) {
	b.mu.RLock()
	_, ok := b.recs[kindFile][id]
	b.mu.RUnlock()
	if !ok {
		return nil, errNotFound
	}
	c, err := os.ReadFile(b.contentPath(id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errNotFound
	}
	return c, err
}

func (b *localBackend) DeleteFile(ctx context.Context, id string) error {
	if err := b.Delete(ctx, kindFile, id); err != nil {
		return err
	}
	if err := os.Remove(b.contentPath(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

func (b *localBackend) Put(_ context.Context, kind, key string, val []byte) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := writeFileAtomic(b.recordPath(kind, key), val); err != nil {
		return err
	}
	b.recs[kind][key] = append([]byte(nil), val...)
	return nil
}

func (b *localBackend) Get(_ context.Context, kind, key string) ([]byte, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	v, ok := b.recs[kind][key]
	if !ok {
		return nil, errNotFound
	}
	return v, nil
}

func (b *localBackend) Delete(_ context.Context, kind, key string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.recs[kind][key]; !ok {
		return nil
	}
	if err := os.Remove(b.recordPath(kind, key)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := syncDir(filepath.Dir(b.recordPath(kind, key))); err != nil {
		return err
	}
	delete(b.recs[kind], key)
	return nil
}

func (b *localBackend) List(_ context.Context, kind, prefix string) ([]record, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	var out []record
	for k, v := range b.recs[kind] {
		if strings.HasPrefix(k, prefix) {
			out = append(out, record{Key: k, Val: v})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

func (b *localBackend) Close() error { return b.unlock() }

// escapeKey makes a key a file name: letters, digits, '-', '_' and '.'
// stay, every other byte is %XX; a leading '.' is escaped too (no "." or
// ".." names, no hidden files).
func escapeKey(k string) string {
	var sb strings.Builder
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || (c == '.' && i > 0) {
			sb.WriteByte(c)
			continue
		}
		fmt.Fprintf(&sb, "%%%02X", c)
	}
	return sb.String()
}

// unescapeKey reverses escapeKey; ok is false for a name it did not make.
func unescapeKey(s string) (string, bool) {
	var sb strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '%' {
			sb.WriteByte(c)
			continue
		}
		if i+2 >= len(s) {
			return "", false
		}
		var v byte
		for _, h := range []byte{s[i+1], s[i+2]} {
			switch {
			case h >= '0' && h <= '9':
				v = v<<4 | (h - '0')
			case h >= 'A' && h <= 'F':
				v = v<<4 | (h - 'A' + 10)
			default:
				return "", false
			}
		}
		sb.WriteByte(v)
		i += 2
	}
	if sb.Len() == 0 {
		return "", false
	}
	return sb.String(), true
}

// writeFileAtomic writes data to path through a temporary file in the same
// directory: synced, renamed over path, the directory synced.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
