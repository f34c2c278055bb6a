package router

import (
	"hash/maphash"
	"math/bits"
	"sync/atomic"
)

// Prefix affinity.
//
// A prompt is cut into blocks of PrefixBlockBytes bytes, and block i is
// identified by a hash chained over blocks 0..i, so that equal hashes mean
// equal prefixes (vLLM identifies its KV-cache blocks the same way, over
// tokens). Each upstream keeps an approximate LRU of the block hashes of the
// prompts sent to it (a prefixIndex); the inference_aware strategy scores a
// target by the share of the request's leading blocks found in its index,
// that is, by how much of the prompt's prefix the server has probably
// cached.

// PrefixBlockBytes is the size of a prefix block: about 64 tokens at 4
// bytes a token (four vLLM blocks of 16 tokens).
const PrefixBlockBytes = 256

// prefixBlockTokens is PrefixBlockBytes in tokens, for sizing an index from
// a server's KV-cache geometry.
const prefixBlockTokens = PrefixBlockBytes / 4

// MaxPrefixBlocks bounds the blocks hashed per request (64 KiB of prompt);
// what comes after is not looked at.
const MaxPrefixBlocks = 256

var prefixSeed = maphash.MakeSeed()

// AppendPrefixHashes appends to dst the chained hashes of b's full blocks
// of PrefixBlockBytes, at most MaxPrefixBlocks of them (a trailing partial
// block is not hashed), and returns the extended slice. Hashes are never 0.
// It allocates nothing when dst has room for MaxPrefixBlocks.
func AppendPrefixHashes(dst []uint64, b []byte) []uint64 {
	var h uint64
	for i := 0; i+PrefixBlockBytes <= len(b) && i < MaxPrefixBlocks*PrefixBlockBytes; i += PrefixBlockBytes {
		h = mix64(h ^ maphash.Bytes(prefixSeed, b[i:i+PrefixBlockBytes]))
		if h == 0 {
			h = 1
		}
		dst = append(dst, h)
	}
	return dst
}

// mix64 is the splitmix64 finalizer: it makes the chain order-dependent.
func mix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// prefixWays is the associativity of a prefixIndex: a hash may sit in any of
// the prefixWays slots of its set, and an insert into a full set replaces
// the least recently stamped one.
const prefixWays = 8

// DefaultPrefixBlocks is the size of a prefix index when neither the config
// nor the server's cache_config_info gives one: 16384 blocks, about one
// million tokens.
const DefaultPrefixBlocks = 16384

// prefixIndex is an approximate LRU set of block hashes: a set-associative
// table of prefixWays-slot sets, each slot a hash and the stamp of its last
// use. Lookups only read; Record writes the stamps and replaces the oldest
// slot of a full set. All fields are atomics, so it is safe for concurrent
// use without a lock; a race between two inserts may lose one of them, which
// only makes the index more approximate.
type prefixIndex struct {
	mask  uint64 // sets - 1
	keys  []atomic.Uint64
	stamp []atomic.Uint32
	clock atomic.Uint32
	size  int // capacity in blocks
}

// newPrefixIndex returns an index of at least blocks slots (rounded up to a
// power of two sets of prefixWays).
func newPrefixIndex(blocks int) *prefixIndex {
	sets := max(1, (blocks+prefixWays-1)/prefixWays)
	sets = 1 << bits.Len(uint(sets-1))
	return &prefixIndex{
		mask:  uint64(sets - 1),
		keys:  make([]atomic.Uint64, sets*prefixWays),
		stamp: make([]atomic.Uint32, sets*prefixWays),
		size:  sets * prefixWays,
	}
}

func (x *prefixIndex) set(h uint64) int { return int((h>>32^h)&x.mask) * prefixWays }

// has reports whether h is in the index.
func (x *prefixIndex) has(h uint64) bool {
	s := x.set(h)
	for i := s; i < s+prefixWays; i++ {
		if x.keys[i].Load() == h {
			return true
		}
	}
	return false
}

// match returns how many leading hashes of chain are in the index. Because
// a block's hash covers every block before it, a found block means the
// whole prefix up to it was sent here; match therefore binary-searches for
// the last found block (eviction may leave holes, which makes it an
// estimate, as the index is).
func (x *prefixIndex) match(chain []uint64) int {
	lo, hi := 0, len(chain) // chain[:lo] found; chain[hi:] not
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if x.has(chain[mid]) {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo
}

// record adds the hashes of chain, stamping them as just used.
func (x *prefixIndex) record(chain []uint64) {
	if len(chain) == 0 {
		return
	}
	now := x.clock.Add(1)
	for _, h := range chain {
		s := x.set(h)
		oldest, oldestStamp, found := s, uint32(0), false
		for i := s; i < s+prefixWays; i++ {
			k := x.keys[i].Load()
			if k == h {
				x.stamp[i].Store(now)
				found = true
				break
			}
			st := x.stamp[i].Load()
			if k == 0 {
				st = 0
			}
			// Stamps wrap; "older" is the larger distance from now.
			if i == s || now-st > now-oldestStamp {
				oldest, oldestStamp = i, st
			}
		}
		if !found {
			x.keys[oldest].Store(h)
			x.stamp[oldest].Store(now)
		}
	}
}

// prefixIndexFor returns u's prefix index, holding at least want blocks:
// made on first use, and made again (empty) when a larger size is asked for
// (a server whose cache_config_info arrived, or a pool configured larger).
func (u *Upstream) prefixIndexFor(want int) *prefixIndex {
	p := &u.st.load.prefix
	for {
		cur := p.Load()
		if cur != nil && cur.size >= want {
			return cur
		}
		if p.CompareAndSwap(cur, newPrefixIndex(want)) {
			return p.Load()
		}
	}
}

// prefixBlocksWanted is the index size for u under a pool configured with
// blocks (0 = from the server's KV-cache geometry, else
// DefaultPrefixBlocks).
func (u *Upstream) prefixBlocksWanted(blocks int) int {
	if blocks > 0 {
		return blocks
	}
	s := &u.st.load
	if bs, nb := s.blockSize.Load(), s.gpuBlocks.Load(); bs > 0 && nb > 0 {
		return max(prefixWays, int(bs*nb/prefixBlockTokens))
	}
	return DefaultPrefixBlocks
}

// keyHash mixes a session key's hash with a target's salt, for rendezvous
// hashing.
func keyHash(key, salt uint64) uint64 { return mix64(key ^ mix64(salt)) }
