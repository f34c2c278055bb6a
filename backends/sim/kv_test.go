package sim

import "testing"

func TestKVCacheLRUEviction(t *testing.T) {
	c := newKVCache(4, true)
	a := []uint64{1, 2}
	b := []uint64{3, 4}
	blocksA := c.allocate(nil, a, 0, 2)
	c.release(blocksA)
	if c.used != 0 || c.lruLen != 2 || c.lookup(a) != 2 {
		t.Fatalf("released prefix not cached: used %d lru %d", c.used, c.lruLen)
	}
	blocksB := c.allocate(nil, b, 0, 2) // takes the two free blocks
	if c.lookup(a) != 2 {
		t.Fatal("prefix a evicted while free blocks remained")
	}
	// A 3-block sequence must evict: a's tail (released first... last) goes first.
	if !c.canAllocate(nil, 0, 2) || c.canAllocate(nil, 0, 3) {
		t.Fatal("capacity check wrong")
	}
	x := c.allocate(nil, nil, 0, 1)
	if got := c.lookup(a); got != 1 {
		t.Errorf("after one eviction a has %d cached blocks, want 1 (its tail evicted first)", got)
	}
	// Hitting a cached block references it instead of allocating.
	hitA := c.allocate(nil, a, c.lookup(a), 1)
	if c.refs[hitA[0]] != 1 || c.lruLen != 0 {
		t.Errorf("hit not referenced: refs %d lru %d", c.refs[hitA[0]], c.lruLen)
	}
	c.release(x)
	c.release(hitA)
	c.release(blocksB)
	if c.used != 0 || c.usage() != 0 {
		t.Errorf("blocks still used: %d", c.used)
	}
}

func TestKVCacheSharedPrefixRefcount(t *testing.T) {
	c := newKVCache(8, true)
	h := []uint64{7, 8, 9}
	one := c.allocate(nil, h, 0, 4)
	two := c.allocate(nil, h, c.lookup(h), 4)
	if c.used != 5 {
		t.Fatalf("used %d, want 5 (3 shared + 2 own)", c.used)
	}
	c.release(one)
	if c.lookup(h) != 3 || c.used != 4 {
		t.Errorf("shared blocks lost: used %d", c.used)
	}
	c.release(two)
	if c.used != 0 || c.lruLen != 3 || c.available() != 8 {
		t.Errorf("used %d lru %d available %d", c.used, c.lruLen, c.available())
	}
}
