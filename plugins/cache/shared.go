package cache

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"switchyard/gateway"
	"switchyard/internal/respool"
)

// Shared configures sharing the cache across replicas through Redis.
type Shared struct {
	// Redis is the server, redis://[user:password@]host:port[/db]; exact
	// entries are kept there too, and semantic entries are published on a
	// stream that every replica indexes.
	Redis string `yaml:"redis"`
}

const (
	sharedPrefix  = "switchyard:cache:"
	sharedTimeout = 100 * time.Millisecond
	// readBlock is how long the stream reader waits for new entries per call.
	readBlock = 2 * time.Second
)

// sharedStore is the Redis side of a route's cache. A lookup that misses
// locally asks Redis (one round trip, bounded); stores go to Redis after
// the response; semantic entries are appended to a stream (bounded) that
// each replica reads from its start, so a replica that joins late indexes
// what the others stored.
type sharedStore struct {
	c      rueidis.Client
	route  string
	origin string // this process's id on the stream
	maxLen int    // the stream's bound
	up     atomic.Bool

	done chan struct{}
	wg   sync.WaitGroup
	once sync.Once

	errors atomic.Int64
}

func newSharedStore(url, route string) (*sharedStore, error) {
	opt, err := rueidis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("redis: %w", unwrapURLError(err))
	}
	opt.DisableCache = true
	opt.ForceSingleClient = true
	opt.Dialer = net.Dialer{Timeout: 500 * time.Millisecond, KeepAlive: time.Second}
	opt.ConnWriteTimeout = time.Second
	opt.ClientName = "switchyard-cache"
	c, err := rueidis.NewClient(opt)
	if err != nil {
		return nil, fmt.Errorf("redis: connecting: %w", err)
	}
	var id [6]byte
	rand.Read(id[:])
	s := &sharedStore{c: c, route: route, origin: hex.EncodeToString(id[:]), done: make(chan struct{})}
	s.up.Store(true)
	return s, nil
}

func unwrapURLError(err error) error {
	var u interface{ Unwrap() error }
	if errors.As(err, &u) && u.Unwrap() != nil {
		return u.Unwrap()
	}
	return err
}

func (s *sharedStore) exactKey(key string) string {
	return sharedPrefix + "x:" + hex.EncodeToString([]byte(key))
}

func (s *sharedStore) streamKey() string { return sharedPrefix + "s:" + s.route }

// get reads an exact entry (compressed) from Redis.
func (s *sharedStore) get(ctx context.Context, key string) ([]byte, time.Duration, bool) {
	ctx, cancel := context.WithTimeout(ctx, sharedTimeout)
	defer cancel()
	k := s.exactKey(key)
	res := s.c.DoMulti(ctx, s.c.B().Get().Key(k).Build(), s.c.B().Pttl().Key(k).Build())
	z, err := res[0].AsBytes()
	if err != nil {
		if !rueidis.IsRedisNil(err) {
			s.errors.Add(1)
		}
		return nil, 0, false
	}
	ttl, err := res[1].AsInt64()
	if err != nil || ttl <= 0 {
		return nil, 0, false
	}
	return z, time.Duration(ttl) * time.Millisecond, true
}

// put writes an exact entry (compressed) to Redis.
func (s *sharedStore) put(key string, z []byte, ttl time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), sharedTimeout*5)
	defer cancel()
	cmd := s.c.B().Set().Key(s.exactKey(key)).Value(rueidis.BinaryString(z)).PxMilliseconds(max(ttl.Milliseconds(), 1)).Build()
	if err := s.c.Do(ctx, cmd).Error(); err != nil {
		s.errors.Add(1)
	}
}

// del removes an exact entry (feedback).
func (s *sharedStore) del(key string) {
	ctx, cancel := context.WithTimeout(context.Background(), sharedTimeout*5)
	defer cancel()
	s.c.Do(ctx, s.c.B().Del().Key(s.exactKey(key)).Build())
}

// publish appends a semantic entry to the route's stream.
func (s *sharedStore) publish(e *semEntry, maxLen int) {
	ctx, cancel := context.WithTimeout(context.Background(), sharedTimeout*5)
	defer cancel()
	cmd := s.c.B().Xadd().Key(s.streamKey()).Maxlen().Almost().Threshold(strconv.Itoa(maxLen)).Id("*").
		FieldValue().FieldValue("o", s.origin).FieldValue("e", rueidis.BinaryString(encodeEntry(e))).Build()
	if err := s.c.Do(ctx, cmd).Error(); err != nil {
		s.errors.Add(1)
	}
}

// follow reads the route's stream from its start and hands every entry
// another replica published to add; it runs until Close.
func (s *sharedStore) follow(add func(*semEntry)) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		ctx, cancel := context.WithCancel(context.Background())
		go func() { <-s.done; cancel() }()
		last := "0"
		for ctx.Err() == nil {
			cmd := s.c.B().Xread().Count(512).Block(readBlock.Milliseconds()).Streams().Key(s.streamKey()).Id(last).Build()
			res, err := s.c.Do(ctx, cmd).AsXRead()
			if err != nil {
				if rueidis.IsRedisNil(err) || ctx.Err() != nil {
					continue
				}
				s.errors.Add(1)
				select {
				case <-ctx.Done():
				case <-time.After(time.Second):
				}
				continue
			}
			for _, entries := range res {
				for _, m := range entries {
					last = m.ID
					if m.FieldValues["o"] == s.origin {
						continue
					}
					if e, err := decodeEntry([]byte(m.FieldValues["e"])); err == nil {
						add(e)
					}
				}
			}
		}
	}()
}

// Close stops the reader and closes the connection.
func (s *sharedStore) Close() error {
	s.once.Do(func() {
		close(s.done)
		s.c.Close()
		s.wg.Wait()
	})
	return nil
}

// encodeEntry is a semantic entry's wire form on the stream: part (32),
// expiry (unix ms, 8), dim (4), the vector (4 each), the query (4 + n),
// the compressed answer (the rest).
func encodeEntry(e *semEntry) []byte {
	b := make([]byte, 0, 32+8+4+4*len(e.Vec)+4+len(e.Query)+len(e.Z))
	b = append(b, e.Part[:]...)
	b = binary.LittleEndian.AppendUint64(b, uint64(e.Expires.UnixMilli()))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(e.Vec)))
	for _, f := range e.Vec {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(f))
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(len(e.Query)))
	b = append(b, e.Query...)
	return append(b, e.Z...)
}

var errEntry = errors.New("cache: a malformed shared entry")

func decodeEntry(b []byte) (*semEntry, error) {
	if len(b) < 32+8+4 {
		return nil, errEntry
	}
	e := &semEntry{}
	copy(e.Part[:], b[:32])
	e.Expires = time.UnixMilli(int64(binary.LittleEndian.Uint64(b[32:40])))
	dim := int(binary.LittleEndian.Uint32(b[40:44]))
	b = b[44:]
	if dim <= 0 || dim > 1<<16 || len(b) < 4*dim+4 {
		return nil, errEntry
	}
	e.Vec = make([]float32, dim)
	for i := range e.Vec {
		e.Vec[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		if f := float64(e.Vec[i]); math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, errEntry
		}
	}
	b = b[4*dim:]
	n := int(binary.LittleEndian.Uint32(b))
	b = b[4:]
	if n < 0 || n > len(b) {
		return nil, errEntry
	}
	e.Query = string(b[:n])
	e.Z = append([]byte(nil), b[n:]...)
	return e, nil
}

// provisionShared takes the route's Redis client from the resource pool;
// with a semantic cache it also follows the route's stream of semantic
// entries into it. An unreachable Redis at build time is logged, and the
// route caches locally until the next reload.
func (s *Stage) provisionShared(env *gateway.Env) error {
	if _, err := rueidis.ParseURL(s.Shared.Redis); err != nil {
		return fmt.Errorf("redis: %w", unwrapURLError(err))
	}
	key, err := respool.Key("cache.shared", struct {
		Route, URL string
		Sem        *semStore
	}{s.route, s.Shared.Redis, s.sem})
	if err != nil {
		return err
	}
	sem := s.sem
	maxLen := defaultMaxEntries
	if s.Semantic != nil {
		maxLen = s.Semantic.MaxEntries
	}
	sh, err := gateway.Resource(env, key, func() (*sharedStore, error) {
		sh, err := newSharedStore(s.Shared.Redis, s.route)
		if err != nil {
			return nil, err
		}
		sh.maxLen = maxLen
		if sem != nil {
			sh.follow(sem.addRemote)
		}
		return sh, nil
	})
	if err != nil {
		if env.Log != nil {
			env.Log.Warn("cache: Redis is unreachable; this route caches locally until the next reload", "error", err.Error())
		}
		return nil
	}
	s.shared = sh
	return nil
}
