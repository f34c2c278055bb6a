package retrieve

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
)

// StoredDoc is a document as a Store keeps it: its chunks and their
// vectors, not its content (the postings are rebuilt from the chunks when
// the collection loads).
type StoredDoc struct {
	ID       string         `json:"id"`
	Title    string         `json:"title,omitempty"`
	URL      string         `json:"url,omitempty"`
	Format   Format         `json:"format"`
	Metadata map[string]any `json:"metadata,omitempty"`
	ACL      ACL            `json:"acl"`
	// Version is the caller's opaque version of the document (Document.Version).
	Version string `json:"version,omitempty"`
	// Seq orders documents by when they were added (last Add wins); the
	// collection loads them in this order so its indexes are rebuilt as
	// they were. The collection numbers its Adds; a Store may number them
	// itself instead (see Store.Put).
	Seq uint64 `json:"seq"`
	// Embedder and Dim name what made Vectors; a collection refuses to
	// load vectors of another embedder.
	Embedder string      `json:"embedder"`
	Dim      int         `json:"dim"`
	Chunks   []Chunk     `json:"chunks"`
	Vectors  [][]float32 `json:"-"`
}

// Store keeps a collection's documents durably: the local DirStore, or
// pgstore's PostgreSQL store shared by replicas. The collection calls Put
// and Delete under its writer lock, before changing what searches see, so a
// failed call changes nothing; Scan is called once, by New (a store that is
// also a ChangeFeed is loaded through Changes instead). A Store must be safe
// for concurrent use.
type Store interface {
	// Put stores d, replacing the document with its ID, atomically: after
	// an error (or a crash) the store holds the old document or the new
	// one, whole. The collection sets d.Seq to one more than the greatest
	// it has seen; a store shared by replicas assigns its own instead,
	// setting d.Seq before returning nil: then every number it assigns
	// (by Put or Delete) must be greater than all it assigned before, for
	// every writer of the collection, so that Seq orders changes as they
	// were committed. Put does not keep d or its slices after returning.
	Put(ctx context.Context, d *StoredDoc) error
	// Delete removes the document id; a missing id is not an error. A
	// store that assigns sequence numbers returns the deletion's (the
	// tombstone's, see ChangeFeed), or 0 when id was not there; DirStore
	// always returns 0.
	Delete(ctx context.Context, id string) (seq uint64, err error)
	// Scan calls fn with every stored document, in any order, and stops at
	// fn's first error. A document that cannot be read whole is an error:
	// a store never yields part of an index.
	Scan(ctx context.Context, fn func(*StoredDoc) error) error
}

// DirStore is a Store in a directory (the collection's data_dir): one file
// per document, docs/<sha-256 of the id, 32 hex digits>.doc, written to a
// temporary file, synced, renamed over the old one, and the directory
// synced, so a crash leaves the old file or the new one. The format, all
// integers little-endian:
//
//	magic    [4]byte  "SYRD"
//	version  uint32   1
//	jsonLen  uint32
//	json     jsonLen bytes: StoredDoc without Vectors
//	count    uint32   vectors, = len(Chunks)
//	dim      uint32
//	vectors  count × dim × float32 (IEEE 754 bits)
//	crc      uint32   CRC-32 (Castagnoli) of every byte before it
//
// A file that is short, fails its checksum or does not decode makes Scan
// fail, naming the file: the collection refuses to open rather than serve
// a partial index. Leftover temporary files are removed by Scan. One
// process at a time may use a directory.
type DirStore struct {
	dir string
}

const (
	docMagic   = "SYRD"
	docVersion = 1
	docExt     = ".doc"
	tmpPrefix  = ".tmp-"
	maxDocFile = 1 << 30
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// OpenDir returns the DirStore in dir, creating dir/docs if needed.
func OpenDir(dir string) (*DirStore, error) {
	if err := os.MkdirAll(filepath.Join(dir, "docs"), 0o755); err != nil {
		return nil, fmt.Errorf("retrieve: creating the store directory: %w", err)
	}
	return &DirStore{dir: dir}, nil
}

func (s *DirStore) docsDir() string { return filepath.Join(s.dir, "docs") }

func (s *DirStore) path(id string) string {
	h := sha256.Sum256([]byte(id))
	return filepath.Join(s.docsDir(), hex.EncodeToString(h[:16])+docExt)
}

// Put writes d's file atomically; it keeps the collection's d.Seq.
func (s *DirStore) Put(ctx context.Context, d *StoredDoc) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	data, err := encodeDoc(d)
	if err != nil {
		return err
	}
	return writeAtomic(s.docsDir(), s.path(d.ID), data)
}

// Delete removes d's file and syncs the directory; it returns seq 0.
func (s *DirStore) Delete(ctx context.Context, id string) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := os.Remove(s.path(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return 0, err
	}
	return 0, syncDir(s.docsDir())
}

// Scan reads every document file.
func (s *DirStore) Scan(ctx context.Context, fn func(*StoredDoc) error) error {
	ents, err := os.ReadDir(s.docsDir())
	if err != nil {
		return err
	}
	for _, e := range ents {
		if err := ctx.Err(); err != nil {
			return err
		}
		name := e.Name()
		p := filepath.Join(s.docsDir(), name)
		if strings.HasPrefix(name, tmpPrefix) {
			// An interrupted Put: the old file, if any, is intact.
			if err := os.Remove(p); err != nil {
				return err
			}
			continue
		}
		if !strings.HasSuffix(name, docExt) || e.IsDir() {
			continue
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		d, err := decodeDoc(data)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if s.path(d.ID) != p {
			return fmt.Errorf("%s: holds document %q, whose file is %s", name, d.ID, filepath.Base(s.path(d.ID)))
		}
		if err := fn(d); err != nil {
			return err
		}
	}
	return nil
}

func encodeDoc(d *StoredDoc) ([]byte, error) {
	js, err := json.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("encoding document %q: %w", d.ID, err)
	}
	if len(d.Vectors) != len(d.Chunks) {
		return nil, fmt.Errorf("document %q: %d vectors for %d chunks", d.ID, len(d.Vectors), len(d.Chunks))
	}
	n := 4 + 4 + 4 + len(js) + 4 + 4 + len(d.Vectors)*d.Dim*4 + 4
	b := make([]byte, 0, n)
	b = append(b, docMagic...)
	b = binary.LittleEndian.AppendUint32(b, docVersion)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(js)))
	b = append(b, js...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(d.Vectors)))
	b = binary.LittleEndian.AppendUint32(b, uint32(d.Dim))
	for i, v := range d.Vectors {
		if len(v) != d.Dim {
			return nil, fmt.Errorf("document %q: vector %d has %d components, want %d", d.ID, i, len(v), d.Dim)
		}
		for _, x := range v {
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
		}
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli)), nil
}

var errTorn = errors.New("truncated or corrupt document file")

func decodeDoc(b []byte) (*StoredDoc, error) {
	if len(b) < 24 {
		return nil, fmt.Errorf("%w: %d bytes", errTorn, len(b))
	}
	if string(b[:4]) != docMagic {
		return nil, fmt.Errorf("bad magic %q, want %q", b[:4], docMagic)
	}
	body, sum := b[:len(b)-4], binary.LittleEndian.Uint32(b[len(b)-4:])
	if got := crc32.Checksum(body, castagnoli); got != sum {
		return nil, fmt.Errorf("%w: checksum %08x, stored %08x", errTorn, got, sum)
	}
	if v := binary.LittleEndian.Uint32(b[4:]); v != docVersion {
		return nil, fmt.Errorf("unsupported version %d, want %d", v, docVersion)
	}
	jl := int(binary.LittleEndian.Uint32(b[8:]))
	if jl > len(body)-20 {
		return nil, fmt.Errorf("%w: JSON length %d", errTorn, jl)
	}
	d := new(StoredDoc)
	dec := json.NewDecoder(bytes.NewReader(b[12 : 12+jl]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(d); err != nil {
		return nil, fmt.Errorf("decoding: %w", err)
	}
	rest := body[12+jl:]
	count := int(binary.LittleEndian.Uint32(rest))
	dim := int(binary.LittleEndian.Uint32(rest[4:]))
	rest = rest[8:]
	if count != len(d.Chunks) || dim != d.Dim || dim <= 0 || len(rest) != count*dim*4 {
		return nil, fmt.Errorf("%w: %d vectors of %d for %d chunks of %d-d in %d bytes", errTorn, count, dim, len(d.Chunks), d.Dim, len(rest))
	}
	block := make([]float32, count*dim)
	for i := range block {
		block[i] = math.Float32frombits(binary.LittleEndian.Uint32(rest[4*i:]))
	}
	d.Vectors = make([][]float32, count)
	for i := range d.Vectors {
		d.Vectors[i] = block[i*dim : (i+1)*dim : (i+1)*dim]
	}
	return d, nil
}

// writeAtomic writes data to path through a synced temporary file in dir,
// renamed over path, then syncs dir.
func writeAtomic(dir, path string, data []byte) error {
	if len(data) > maxDocFile {
		return fmt.Errorf("document file of %d bytes, at most %d", len(data), maxDocFile)
	}
	f, err := os.CreateTemp(dir, tmpPrefix+"*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	ok = true
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", filepath.Base(dir), err)
	}
	return nil
}
