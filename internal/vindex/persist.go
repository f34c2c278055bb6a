package vindex

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
)

// The saved format, all integers little-endian:
//
//	magic   [4]byte  "SYVX"
//	version uint32   1
//	dim     uint32
//	count   uint64
//	count × { id uint64; vector dim × float32 (IEEE 754 bits) }
//	crc     uint32   CRC-32 (IEEE) of every byte before it
//
// Only live ids are saved; the graph is rebuilt by Load.
const (
	magic      = "SYVX"
	version    = 1
	headerSize = 4 + 4 + 4 + 8
)

// Save writes the index's live ids and vectors to w in the versioned format
// above. Concurrent searches may proceed; writes wait.
func (ix *Index) Save(w io.Writer) error {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	crc := crc32.NewIEEE()
	bw := bufio.NewWriterSize(io.MultiWriter(w, crc), 64<<10)
	var hdr [headerSize]byte
	copy(hdr[:], magic)
	binary.LittleEndian.PutUint32(hdr[4:], version)
	binary.LittleEndian.PutUint32(hdr[8:], uint32(ix.dim))
	binary.LittleEndian.PutUint64(hdr[12:], uint64(len(ix.byID)))
	if _, err := bw.Write(hdr[:]); err != nil {
		return fmt.Errorf("vindex: save header: %w", err)
	}
	rec := make([]byte, 8+4*ix.dim)
	for s, id := range ix.ids {
		if ix.dead[s] {
			continue
		}
		binary.LittleEndian.PutUint64(rec, id)
		for i, x := range ix.vec(uint32(s)) {
			binary.LittleEndian.PutUint32(rec[8+4*i:], math.Float32bits(x))
		}
		if _, err := bw.Write(rec); err != nil {
			return fmt.Errorf("vindex: save id %d: %w", id, err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("vindex: save: %w", err)
	}
	var sum [4]byte
	binary.LittleEndian.PutUint32(sum[:], crc.Sum32())
	if _, err := w.Write(sum[:]); err != nil {
		return fmt.Errorf("vindex: save checksum: %w", err)
	}
	return nil
}

// Load reads an index written by Save and rebuilds its graph with the
// options o. It returns an error, never panics, on truncated or corrupt
// input, a wrong magic, an unknown version or a checksum mismatch.
func Load(r io.Reader, o Options) (*Index, error) {
	crc := crc32.NewIEEE()
	br := bufio.NewReaderSize(r, 64<<10)
	tr := io.TeeReader(br, crc)
	var hdr [headerSize]byte
	if _, err := io.ReadFull(tr, hdr[:]); err != nil {
		return nil, fmt.Errorf("vindex: load header: %w", truncated(err))
	}
	if string(hdr[:4]) != magic {
		return nil, fmt.Errorf("vindex: load: bad magic %q, want %q", hdr[:4], magic)
	}
	if v := binary.LittleEndian.Uint32(hdr[4:]); v != version {
		return nil, fmt.Errorf("vindex: load: unsupported version %d, want %d", v, version)
	}
	dim := binary.LittleEndian.Uint32(hdr[8:])
	if dim == 0 || dim > maxDim {
		return nil, fmt.Errorf("vindex: load: dimension %d out of range [1, %d]", dim, maxDim)
	}
	count := binary.LittleEndian.Uint64(hdr[12:])
	if count > math.MaxUint32 {
		return nil, fmt.Errorf("vindex: load: count %d too large", count)
	}
	// Grow as records arrive rather than trusting count for the allocation.
	n := int(count)
	pre := min(n, max(1, (1<<18)/int(dim))) // at most 1 MiB of vectors
	ids := make([]uint64, 0, pre)
	vecs := make([]float32, 0, pre*int(dim))
	rec := make([]byte, 8+4*int(dim))
	for i := range n {
		if _, err := io.ReadFull(tr, rec); err != nil {
			return nil, fmt.Errorf("vindex: load record %d of %d: %w", i, n, truncated(err))
		}
		ids = append(ids, binary.LittleEndian.Uint64(rec))
		for j := range int(dim) {
			vecs = append(vecs, math.Float32frombits(binary.LittleEndian.Uint32(rec[8+4*j:])))
		}
	}
	want := crc.Sum32()
	var sum [4]byte
	if _, err := io.ReadFull(br, sum[:]); err != nil {
		return nil, fmt.Errorf("vindex: load checksum: %w", truncated(err))
	}
	if got := binary.LittleEndian.Uint32(sum[:]); got != want {
		return nil, fmt.Errorf("vindex: load: checksum mismatch: stored %08x, computed %08x", got, want)
	}
	ix := New(int(dim), o)
	ix.vecs = make([]float32, 0, len(vecs))
	ix.ids = make([]uint64, 0, n)
	ix.links0 = make([]uint32, 0, n*(ix.m0+1))
	seen := make(map[uint64]struct{}, n)
	for i, id := range ids {
		if _, dup := seen[id]; dup {
			return nil, fmt.Errorf("vindex: load record %d: duplicate id %d", i, id)
		}
		seen[id] = struct{}{}
		v := vecs[i*int(dim) : (i+1)*int(dim)]
		if err := ix.check(v); err != nil {
			return nil, fmt.Errorf("vindex: load record %d (id %d): %w", i, id, err)
		}
		ix.add(id, v)
	}
	return ix, nil
}

func truncated(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("truncated input: %w", io.ErrUnexpectedEOF)
	}
	return err
}
