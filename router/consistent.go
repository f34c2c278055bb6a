package router

import (
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"slices"
	"strconv"
)

// consistentHash maps a request's session key onto a ring of points, each
// target owning BalanceSpec.Replicas of them (times its weight), and takes
// the first usable target clockwise from the key. Adding or removing a
// target moves only the keys of the arcs it gains or loses. A request
// without a session key falls back to its first prefix block, then to a
// random point.
type consistentHash struct {
	spec   BalanceSpec
	points []uint64 // sorted
	owner  []int32  // by point: the target index
}

// DefaultReplicas is consistent_hash's points per target when the spec
// gives none.
const DefaultReplicas = 100

func newConsistentHash(p *Pool) (Balancer, error) {
	if p.Balance.Session.By == SessionNone {
		return nil, fmt.Errorf("strategy consistent_hash needs a session key source (session.by: user, header or key)")
	}
	reps := p.Balance.Replicas
	if reps <= 0 {
		reps = DefaultReplicas
	}
	type point struct {
		h uint64
		t int32
	}
	var pts []point
	for i, t := range p.Targets {
		w := 1
		if p.weighted {
			w = t.Weight
		}
		base := t.Upstream.Name + "\x00" + t.Model + "\x00"
		for r := 0; r < reps*w; r++ {
			pts = append(pts, point{maphash.String(prefixSeed, base+strconv.Itoa(r)), int32(i)})
		}
	}
	if len(pts) == 0 {
		return nil, fmt.Errorf("strategy consistent_hash: no target with a positive weight")
	}
	slices.SortFunc(pts, func(a, b point) int {
		switch {
		case a.h < b.h:
			return -1
		case a.h > b.h:
			return 1
		}
		return int(a.t - b.t)
	})
	b := &consistentHash{spec: p.Balance, points: make([]uint64, len(pts)), owner: make([]int32, len(pts))}
	for i, pt := range pts {
		b.points[i], b.owner[i] = pt.h, pt.t
	}
	return b, nil
}

func (b *consistentHash) Pick(p *Pool, req *Request, avoid *Target, clk Clock) *Target {
	h, ok := b.spec.Session.sessionHash(req)
	if !ok {
		if len(req.Prefix) > 0 {
			h = req.Prefix[0]
		} else {
			h = rand.Uint64()
		}
	}
	h = mix64(h)
	// The first point at or after h, wrapping.
	lo, hi := 0, len(b.points)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if b.points[mid] < h {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	// Walk the ring until a usable target takes it; each target is tried
	// once (tried is a bit set over at most maxAwareTargets targets, then
	// by the ring's length).
	var tried [maxAwareTargets / 64]uint64
	n := len(b.points)
	for k := 0; k < n; k++ {
		i := lo + k
		if i >= n {
			i -= n
		}
		ti := int(b.owner[i])
		if ti < maxAwareTargets {
			if tried[ti/64]&(1<<(ti%64)) != 0 {
				continue
			}
			tried[ti/64] |= 1 << (ti % 64)
		}
		if t := p.Targets[ti]; t != avoid && p.Take(t, &clk) {
			return t
		}
	}
	return nil
}
