package sim

// kvCache is a paged KV cache with a prefix cache, as vLLM keeps it. Blocks
// hold blockSize tokens. A full prompt block is identified by a hash chained
// over all tokens up to its end, so equal hashes mean equal prefixes. Blocks
// in use have a reference count; a hashed block whose count drops to zero
// stays cached (it can be hit again) on an LRU list until a new allocation
// evicts it. It is not safe for concurrent use; the engine locks it.
type kvCache struct {
	refs    []int32
	hashes  []uint64
	hashed  []bool
	prev    []int32 // LRU links of unreferenced cached blocks
	next    []int32
	lruHead int32 // least recently used
	lruTail int32
	lruLen  int
	free    []int32 // released unhashed, unreferenced blocks
	fresh   int     // blocks never used: indexes len(refs)..n-1
	n       int
	byHash  map[uint64]int32
	used    int // blocks with refs > 0
	caching bool
}

// newKVCache returns a cache of blocks blocks. Its per-block state grows as
// blocks are first used, so a huge, mostly idle cache costs little memory.
func newKVCache(blocks int, caching bool) *kvCache {
	return &kvCache{
		lruHead: -1,
		lruTail: -1,
		fresh:   blocks,
		n:       blocks,
		byHash:  make(map[uint64]int32),
		caching: caching,
	}
}

// available is the number of blocks an allocation can take: free, never
// used, and cached but unreferenced.
func (c *kvCache) available() int { return len(c.free) + c.fresh + c.lruLen }

// usage is the fraction of blocks referenced by running sequences.
func (c *kvCache) usage() float64 { return float64(c.used) / float64(c.n) }

func (c *kvCache) lruRemove(b int32) {
	p, n := c.prev[b], c.next[b]
	if p >= 0 {
		c.next[p] = n
	} else {
		c.lruHead = n
	}
	if n >= 0 {
		c.prev[n] = p
	} else {
		c.lruTail = p
	}
	c.lruLen--
}

func (c *kvCache) lruPush(b int32) {
	c.prev[b], c.next[b] = c.lruTail, -1
	if c.lruTail >= 0 {
		c.next[c.lruTail] = b
	} else {
		c.lruHead = b
	}
	c.lruTail = b
	c.lruLen++
}

// lookup returns how many leading block hashes are cached.
func (c *kvCache) lookup(hashes []uint64) int {
	if !c.caching {
		return 0
	}
	for i, h := range hashes {
		if _, ok := c.byHash[h]; !ok {
			return i
		}
	}
	return len(hashes)
}

// canAllocate reports whether need blocks fit when the first hits of hashes
// are taken from the cache.
func (c *kvCache) canAllocate(hashes []uint64, hits, need int) bool {
	idleHits := 0
	for _, h := range hashes[:hits] {
		if c.refs[c.byHash[h]] == 0 {
			idleHits++
		}
	}
	fresh := need - hits
	return fresh <= c.available()-idleHits
}

// allocate references the first hits cached blocks of hashes, then takes
// need-hits fresh blocks, registering the remaining prompt hashes. It appends
// the blocks to dst. The caller has checked canAllocate.
func (c *kvCache) allocate(dst []int32, hashes []uint64, hits, need int) []int32 {
	for _, h := range hashes[:hits] {
		b := c.byHash[h]
		if c.refs[b] == 0 {
			c.lruRemove(b)
			c.used++
		}
		c.refs[b]++
		dst = append(dst, b)
	}
	for i := hits; i < need; i++ {
		var b int32
		if n := len(c.free); n > 0 {
			b = c.free[n-1]
			c.free = c.free[:n-1]
		} else if c.fresh > 0 {
			b = int32(len(c.refs))
			c.fresh--
			c.refs = append(c.refs, 0)
			c.hashes = append(c.hashes, 0)
			c.hashed = append(c.hashed, false)
			c.prev = append(c.prev, -1)
			c.next = append(c.next, -1)
		} else {
			b = c.lruHead // evict the least recently used cached block
			c.lruRemove(b)
			delete(c.byHash, c.hashes[b])
			c.hashed[b] = false
		}
		c.refs[b] = 1
		c.used++
		if c.caching && i < len(hashes) {
			if _, dup := c.byHash[hashes[i]]; !dup {
				c.byHash[hashes[i]] = b
				c.hashes[b] = hashes[i]
				c.hashed[b] = true
			}
		}
		dst = append(dst, b)
	}
	return dst
}

// release drops one reference from each block; cached blocks become
// evictable, the others free. Blocks are released last to first so that the
// tail of a prefix is evicted before its head.
func (c *kvCache) release(blocks []int32) {
	for i := len(blocks) - 1; i >= 0; i-- {
		b := blocks[i]
		c.refs[b]--
		if c.refs[b] > 0 {
			continue
		}
		c.used--
		if c.hashed[b] {
			c.lruPush(b)
		} else {
			c.free = append(c.free, b)
		}
	}
}
