package cache

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/ristretto/v2"
	"github.com/klauspost/compress/zstd"
)

// entryOverhead is what an entry costs besides its compressed body (the
// key, the struct, the cache's bookkeeping), counted against max_bytes.
const entryOverhead = 160

// entry is one stored answer, zstd-compressed.
type entry struct {
	z       []byte
	size    int // uncompressed
	created time.Time
}

// exactStore is a route's exact cache: a ristretto cache bounded in bytes
// (compressed answers plus a fixed overhead each), with a TTL per entry. It
// is a shared resource: it survives reloads that keep its size.
type exactStore struct {
	c   *ristretto.Cache[string, *entry]
	enc *zstd.Encoder
	dec *zstd.Decoder

	bytes     atomic.Int64
	entries   atomic.Int64
	evictions atomic.Int64
}

var (
	zstdOnce sync.Once
	zenc     *zstd.Encoder
	zdec     *zstd.Decoder
)

// coders are the process's zstd encoder and decoder; EncodeAll and
// DecodeAll are safe for concurrent use.
func coders() (*zstd.Encoder, *zstd.Decoder) {
	zstdOnce.Do(func() {
		zenc, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
		zdec, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(64<<20))
	})
	return zenc, zdec
}

func newExactStore(maxBytes int64) (*exactStore, error) {
	s := &exactStore{}
	s.enc, s.dec = coders()
	counters := max(maxBytes/1024*10, 10000) // ~10x the entries expected of ~1 KiB each
	c, err := ristretto.NewCache(&ristretto.Config[string, *entry]{
		NumCounters: counters,
		MaxCost:     maxBytes,
		BufferItems: 64,
		OnEvict: func(it *ristretto.Item[*entry]) {
			s.evictions.Add(1)
		},
		OnExit: func(e *entry) {
			if e != nil {
				s.bytes.Add(-int64(len(e.z) + entryOverhead))
				s.entries.Add(-1)
			}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("cache: making the exact cache: %w", err)
	}
	s.c = c
	return s, nil
}

// get returns the stored answer under key, decompressed into dst.
func (s *exactStore) get(key string, dst []byte) ([]byte, *entry, bool) {
	e, ok := s.c.Get(key)
	if !ok || e == nil {
		return dst, nil, false
	}
	out, err := s.dec.DecodeAll(e.z, dst[:0])
	if err != nil {
		s.c.Del(key)
		return dst, nil, false
	}
	return out, e, true
}

// put stores body under key for ttl; it reports whether the cache took it
// (ristretto's admission policy may refuse a newcomer when full).
func (s *exactStore) put(key string, body []byte, ttl time.Duration) bool {
	return s.putZ(key, s.enc.EncodeAll(body, nil), len(body), ttl)
}

// putZ stores an answer already compressed (z), of size bytes.
func (s *exactStore) putZ(key string, z []byte, size int, ttl time.Duration) bool {
	e := &entry{z: z, size: size, created: time.Now()}
	cost := int64(len(e.z) + entryOverhead)
	// Counted now; OnExit takes it back whenever the entry goes (replaced,
	// refused by the admission policy, evicted, expired or deleted).
	s.bytes.Add(cost)
	s.entries.Add(1)
	if !s.c.SetWithTTL(key, e, cost, ttl) {
		s.bytes.Add(-cost) // dropped before the cache saw it: no OnExit
		s.entries.Add(-1)
		return false
	}
	s.c.Wait()
	_, ok := s.c.Get(key)
	return ok
}

func (s *exactStore) del(key string) { s.c.Del(key) }

// clear drops every entry.
func (s *exactStore) clear() { s.c.Clear() }

// Close implements io.Closer for the resource pool.
func (s *exactStore) Close() error {
	s.c.Close()
	return nil
}
