package router

import (
	"fmt"
	"hash/maphash"
	"math"
	"math/rand/v2"
)

// BalanceSpec tunes the inference_aware and consistent_hash strategies;
// other strategies ignore it. As everywhere in a Spec, zero values mean what
// the comments say (the config package fills in its defaults).
type BalanceSpec struct {
	// Weights of inference_aware's scorers; all zero picks at random among
	// the targets that are not saturated.
	Weights Weights
	// A target whose fresh metrics report at least SaturatedQueue waiting
	// requests, or a KV-cache use of at least SaturatedKV, is saturated:
	// inference_aware skips it unless every target is. 0 = no such bound.
	SaturatedQueue float64
	SaturatedKV    float64
	// PrefixBlocks sizes each target's prefix index, in blocks of
	// PrefixBlockBytes; 0 = from the server's cache_config_info
	// (num_gpu_blocks * block_size tokens), else DefaultPrefixBlocks.
	PrefixBlocks int
	// Session says where a request's session key comes from, for the
	// session scorer and consistent_hash.
	Session SessionSpec
	// Replicas is consistent_hash's points on the ring per target (times
	// its weight when positive); 0 = 100.
	Replicas int
}

// Weights are the weights of inference_aware's scorers. Each scorer gives a
// target a score in [0, 1]; the target with the largest weighted sum wins.
type Weights struct {
	Queue   float64 // fewer requests waiting (scraped, plus those sent since the scrape)
	KV      float64 // less KV cache in use
	Prefix  float64 // more of the prompt's leading blocks sent there before
	Tokens  float64 // fewer estimated prompt tokens in flight from this gateway
	TTFT    float64 // lower moving average of the time to first byte
	Session float64 // the target the request's session key hashes to (rendezvous)
}

// Session key sources.
const (
	SessionNone   = ""       // no session key
	SessionUser   = "user"   // the request's OpenAI "user" field (Request.SessionKey)
	SessionHeader = "header" // a request header (SessionSpec.Header)
	SessionKey    = "key"    // the caller's API key id
)

// SessionSpec says where a request's session key comes from.
type SessionSpec struct {
	By     string // one of the Session* constants
	Header string // the header's name, for SessionHeader
}

// sessionHash returns the hash of req's session key and whether it has one.
func (s *SessionSpec) sessionHash(req *Request) (uint64, bool) {
	switch s.By {
	case SessionUser:
		if len(req.SessionKey) > 0 {
			return maphash.Bytes(prefixSeed, req.SessionKey), true
		}
	case SessionHeader:
		if req.Header != nil {
			if v := req.Header.Peek(s.Header); len(v) > 0 {
				return maphash.Bytes(prefixSeed, v), true
			}
		}
	case SessionKey:
		if req.KeyID != "" {
			return maphash.String(prefixSeed, req.KeyID), true
		}
	}
	return 0, false
}

// maxAwareTargets bounds the targets of an inference_aware pool: the pick
// keeps its per-target figures in fixed arrays on the stack.
const maxAwareTargets = 128

// inferenceAware scores every usable target on its load (scraped queue
// depth and KV-cache use, the gateway's own in-flight counts and tokens,
// time to first byte), on prefix affinity and on session affinity, skips
// saturated targets unless all are, and takes the best (ties at random).
type inferenceAware struct {
	spec  BalanceSpec
	salts []uint64 // by target: its rendezvous salt
}

func newInferenceAware(p *Pool) (Balancer, error) {
	if len(p.Targets) > maxAwareTargets {
		return nil, fmt.Errorf("strategy inference_aware takes at most %d targets, not %d", maxAwareTargets, len(p.Targets))
	}
	b := &inferenceAware{spec: p.Balance, salts: make([]uint64, len(p.Targets))}
	for i, t := range p.Targets {
		b.salts[i] = maphash.String(prefixSeed, t.Upstream.Name+"\x00"+t.Model)
	}
	return b, nil
}

// figures are one target's inputs to the scorers.
type figures struct {
	queue, kv, tokens, ttft float64 // kv < 0: unknown; ttft 0: unknown
	prefix                  int     // leading blocks matched
	saturated               bool
}

func (b *inferenceAware) Pick(p *Pool, req *Request, avoid *Target, clk Clock) *Target {
	var f [maxAwareTargets]figures
	var usable [maxAwareTargets]bool
	n := len(p.Targets)
	w := &b.spec.Weights
	chain := req.Prefix
	if w.Prefix == 0 {
		chain = nil
	}
	anyOK, allSaturated := false, true
	for i, t := range p.Targets {
		u := t.Upstream
		if t == avoid || u.full() || !p.Usable(t, &clk) {
			continue
		}
		usable[i], anyOK = true, true
		b.figures(&f[i], u, chain, &clk)
		if !f[i].saturated {
			allSaturated = false
		}
	}
	if !anyOK {
		return nil
	}
	// Fail open: when every usable target is saturated, all compete.
	for i := 0; i < n; i++ {
		if usable[i] && f[i].saturated && !allSaturated {
			usable[i] = false
		}
	}

	var score [maxAwareTargets]float64
	b.score(score[:n], f[:n], usable[:n], req)
	for {
		best, ties := -1, 0
		for i := 0; i < n; i++ {
			if !usable[i] {
				continue
			}
			switch {
			case best < 0 || score[i] > score[best]:
				best, ties = i, 1
			case score[i] == score[best]:
				ties++
				if rand.IntN(ties) == 0 {
					best = i
				}
			}
		}
		if best < 0 {
			return nil
		}
		t := p.Targets[best]
		if t.Upstream.TryAcquire() {
			if len(chain) > 0 {
				t.Upstream.prefixIndexFor(t.Upstream.prefixBlocksWanted(b.spec.PrefixBlocks)).record(chain)
			}
			return t
		}
		usable[best] = false // lost a race for its last slot
	}
}

// figures fills f for upstream u.
func (b *inferenceAware) figures(f *figures, u *Upstream, chain []uint64, clk *Clock) {
	s := &u.st.load
	f.queue, f.kv = float64(u.Inflight()), -1
	f.tokens = float64(s.tokens.Load())
	f.ttft = math.Float64frombits(s.ttft.Load())
	if q, kv, ok := u.freshLoad(clk); ok {
		f.queue, f.kv = q, kv
		f.saturated = b.spec.saturated(q, kv)
	} else if u.MetricsStale > 0 {
		// Stale or never scraped: saturated, and scored on the gateway's
		// own in-flight count.
		f.saturated = true
	}
	if len(chain) > 0 {
		if x := s.prefix.Load(); x != nil {
			f.prefix = x.match(chain)
		}
	}
}

// freshLoad returns u's queue (the scraped waiting requests plus those the
// gateway sent since that scrape) and KV-cache use, from a scrape no older
// than MetricsStale at clk; ok is false when u is not scraped or its last
// scrape is stale. The clock is read only when u is scraped.
func (u *Upstream) freshLoad(clk *Clock) (queue, kv float64, ok bool) {
	if u.MetricsStale <= 0 {
		return 0, 0, false
	}
	s := &u.st.load
	at := s.at.Load()
	if at == 0 || clk.UnixNano()-at > int64(u.MetricsStale) {
		return 0, 0, false
	}
	queue = math.Float64frombits(s.waiting.Load()) + float64(max(0, u.Inflight()-s.inflightAt.Load()))
	return queue, math.Float64frombits(s.kv.Load()), true
}

// saturated reports whether a queue or KV use is at or over the spec's
// bounds.
func (spec *BalanceSpec) saturated(queue, kv float64) bool {
	return spec.SaturatedQueue > 0 && queue >= spec.SaturatedQueue ||
		spec.SaturatedKV > 0 && kv >= spec.SaturatedKV
}

// score fills score with the weighted sum of the scorers for the usable
// targets. Queue, tokens and TTFT are normalized between the best and the
// worst usable target (min-max, so only differences count); KV is 1 minus
// the use (0.5 when unknown); prefix is the share of the request's blocks
// matched; session is 1 for the target the key hashes to, else 0.
func (b *inferenceAware) score(score []float64, f []figures, usable []bool, req *Request) {
	w := &b.spec.Weights
	qlo, qhi := math.Inf(1), math.Inf(-1)
	tlo, thi := math.Inf(1), math.Inf(-1)
	ylo, yhi := math.Inf(1), math.Inf(-1)
	for i := range f {
		if !usable[i] {
			continue
		}
		qlo, qhi = min(qlo, f[i].queue), max(qhi, f[i].queue)
		tlo, thi = min(tlo, f[i].tokens), max(thi, f[i].tokens)
		if f[i].ttft > 0 {
			ylo, yhi = min(ylo, f[i].ttft), max(yhi, f[i].ttft)
		}
	}
	sess, hasSess := uint64(0), false
	if w.Session != 0 {
		sess, hasSess = b.spec.Session.sessionHash(req)
	}
	sessBest, sessMax := -1, uint64(0)
	blocks := float64(len(req.Prefix))
	for i := range f {
		if !usable[i] {
			continue
		}
		s := 0.0
		if w.Queue != 0 {
			s += w.Queue * lowIsGood(f[i].queue, qlo, qhi)
		}
		if w.KV != 0 {
			kv := 0.5
			if f[i].kv >= 0 {
				kv = 1 - min(1, f[i].kv)
			}
			s += w.KV * kv
		}
		if w.Prefix != 0 && blocks > 0 {
			s += w.Prefix * float64(f[i].prefix) / blocks
		}
		if w.Tokens != 0 {
			s += w.Tokens * lowIsGood(f[i].tokens, tlo, thi)
		}
		if w.TTFT != 0 {
			y := 1.0 // no sample yet: worth a try
			if f[i].ttft > 0 {
				y = lowIsGood(f[i].ttft, ylo, yhi)
			}
			s += w.TTFT * y
		}
		if hasSess {
			if h := keyHash(sess, b.salts[i]); sessBest < 0 || h > sessMax {
				sessBest, sessMax = i, h
			}
		}
		score[i] = s
	}
	if sessBest >= 0 {
		score[sessBest] += w.Session
	}
}

// lowIsGood maps v in [lo, hi] to [0, 1], 1 at lo; 1 when all are equal.
func lowIsGood(v, lo, hi float64) float64 {
	if hi <= lo {
		return 1
	}
	return (hi - v) / (hi - lo)
}

// Saturated reports whether every target of the pool that may be picked
// reports, in fresh metrics, a queue or KV-cache use at or above the pool's
// saturation bounds. Targets without metrics, or whose metrics are stale,
// are not known to be saturated, so a pool with one is not saturated: the
// admission's priority shedding acts on what is measured, never on a
// scraper that is down.
func (p *Pool) Saturated(now int64) bool {
	spec := &p.Balance
	if spec.SaturatedQueue <= 0 && spec.SaturatedKV <= 0 {
		return false
	}
	clk := Clock{now: now, set: true}
	any := false
	for _, t := range p.Targets {
		if !p.serves(t) {
			continue
		}
		q, kv, ok := t.Upstream.freshLoad(&clk)
		if !ok || !spec.saturated(q, kv) {
			return false
		}
		any = true
	}
	return any
}
