package embed

import (
	"context"
	"fmt"
	"math"
	"sync"
)

// Embedder turns texts into L2-normalized vectors of Dim() float32s.
type Embedder interface {
	// Embed returns one vector per text, in order.
	Embed(ctx context.Context, texts []string) ([][]float32, error)
	// Dim is the length of every vector.
	Dim() int
	// Name identifies the embedder, e.g. in cache keys and metrics.
	Name() string
}

// DefaultDim is the vector length of NewBuiltin(0). In a weight sweep on
// the evaluation set, 256, 512 and 1024 buckets reached recalls within two
// points of each other at <= 1 false hit; 512 keeps hash collisions rare for
// prompts of a few hundred words at 2 KiB per vector.
const DefaultDim = 512

// DefaultThreshold is the cosine similarity from which the builtin embedder's
// vectors count as a match, to be followed by Guard. On the evaluation set
// (testdata/eval.md) it gives 1 false hit in 242 near-misses and a recall
// of 0.46; 0.40 was the lowest threshold with at most one false hit, so this
// keeps a 0.05 margin. It is low because Guard, not the cosine, provides
// the precision.
const DefaultThreshold float32 = 0.45

// Feature weights, chosen by measurement on testdata/pairs.jsonl.
const (
	wStop  = 0.1 // function words and fillers
	wExact = 2.0 // tokens of an exact class (numbers, negations, units, ...)
	wBi    = 0.6 // bigram of consecutive content words
	wChar  = 0.8 // all character n-grams of one word together
)

// Seeds keep the feature families apart in the hash space.
const (
	seedUni  = 0x9e3779b97f4a7c15
	seedBi   = 0xc2b2ae3d27d4eb4f
	seedChar = 0x165667b19e3779f9
)

// Builtin is a model-free embedder: feature hashing of normalized words,
// word bigrams and character n-grams, with fixed hash functions so vectors
// are identical across processes and restarts. It is safe for concurrent use.
type Builtin struct {
	dim int
}

// NewBuiltin returns a Builtin producing vectors of dim float32s; dim <= 0
// means DefaultDim.
func NewBuiltin(dim int) *Builtin {
	if dim <= 0 {
		dim = DefaultDim
	}
	return &Builtin{dim: dim}
}

// Dim returns the vector length.
func (b *Builtin) Dim() int { return b.dim }

// Name returns "builtin".
func (b *Builtin) Name() string { return "builtin" }

// Embed returns one vector per text. All vectors share one allocation. It
// stops with ctx's error if ctx is done before all texts are embedded.
func (b *Builtin) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	out := make([][]float32, len(texts))
	block := make([]float32, len(texts)*b.dim)
	for i, t := range texts {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("embed: text %d of %d: %w", i, len(texts), err)
		}
		out[i] = b.EmbedInto(t, block[i*b.dim:(i+1)*b.dim:(i+1)*b.dim])
	}
	return out, nil
}

// scratch is the per-call state of EmbedInto, pooled.
type scratch struct {
	tk   tokenizer
	seen [tfSlots]uint64 // open-addressing set of word hashes (0: empty)
	cnt  [tfSlots]uint32
	used int
}

const tfSlots = 1024

// tfStep[k] = ln(k/(k-1)), the weight of a word's k-th occurrence.
var tfStep = func() (t [256]float32) {
	for k := 2; k < len(t); k++ {
		t[k] = float32(math.Log(float64(k) / float64(k-1)))
	}
	return t
}()

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

// occurrence counts h and returns how many times it has been seen, this one
// included; once the table is three quarters full new words count as first
// occurrences.
func (s *scratch) occurrence(h uint64) uint32 {
	if h == 0 {
		h = 1
	}
	i := int(mix(h) & (tfSlots - 1))
	for {
		switch s.seen[i] {
		case h:
			s.cnt[i]++
			return s.cnt[i]
		case 0:
			if s.used >= tfSlots*3/4 {
				return 1
			}
			s.seen[i], s.cnt[i] = h, 1
			s.used++
			return 1
		}
		i = (i + 1) & (tfSlots - 1)
	}
}

// EmbedInto writes the vector of text into dst and returns it. dst is reused
// when its capacity is at least Dim(), so the call does not allocate;
// otherwise a new slice is allocated. A text without words (empty, only
// punctuation) yields the zero vector.
func (b *Builtin) EmbedInto(text string, dst []float32) []float32 {
	if cap(dst) >= b.dim {
		dst = dst[:b.dim]
		clear(dst)
	} else {
		dst = make([]float32, b.dim)
	}
	s := scratchPool.Get().(*scratch)
	s.tk.reset(text)
	v := vec{dst: dst, dim: uint64(b.dim)}
	var prev uint64
	havePrev := false
	for {
		tok, ok := s.tk.next()
		if !ok {
			break
		}
		// Sublinear term frequency: the k-th occurrence of a word adds
		// ln(k/(k-1)), so c occurrences weigh 1+ln(c).
		f := float32(1)
		if k := s.occurrence(tok.hash); k > 1 {
			if k < uint32(len(tfStep)) {
				f = tfStep[k]
			} else {
				f = float32(math.Log(float64(k) / float64(k-1)))
			}
		}
		w := float32(1)
		switch {
		case tok.stop:
			w = wStop
		case tok.class != classNone:
			w = wExact
		}
		v.add(tok.hash^seedUni, w*f)
		if tok.stop {
			continue
		}
		if havePrev {
			v.add((prev*fnvPrime)^tok.hash^seedBi, wBi*f)
		}
		prev, havePrev = tok.hash, true
		if tok.class == classNumber {
			continue
		}
		v.charNgrams(tok.raw, wChar*f)
	}
	if s.used > 0 {
		clear(s.seen[:])
		s.used = 0
	}
	scratchPool.Put(s)
	normalize(dst)
	return dst
}

// vec accumulates signed hashed features.
type vec struct {
	dst []float32
	dim uint64
}

// add adds w to the bucket of h, with the sign of one of h's bits.
func (v *vec) add(h uint64, w float32) {
	h = mix(h)
	i := (h >> 32) * v.dim >> 32
	if h&1 != 0 {
		w = -w
	}
	v.dst[i] += w
}

// charNgrams adds the 3- to 5-byte n-grams of "<raw>" with a total squared
// weight of w².
func (v *vec) charNgrams(raw []byte, w float32) {
	L := len(raw) + 2
	count := 0
	for n := 3; n <= 5; n++ {
		if L >= n {
			count += L - n + 1
		}
	}
	if count == 0 {
		return
	}
	each := w / float32(math.Sqrt(float64(count)))
	var buf [maxWord + 2]byte
	buf[0] = '<'
	copy(buf[1:], raw)
	buf[L-1] = '>'
	p := buf[:L]
	for i := 0; i+3 <= L; i++ {
		h := uint64(fnvOffset ^ seedChar)
		h = (h ^ uint64(p[i])) * fnvPrime
		h = (h ^ uint64(p[i+1])) * fnvPrime
		h = (h ^ uint64(p[i+2])) * fnvPrime
		v.add(h, each)
		if i+4 <= L {
			h = (h ^ uint64(p[i+3])) * fnvPrime
			v.add(h, each)
			if i+5 <= L {
				h = (h ^ uint64(p[i+4])) * fnvPrime
				v.add(h, each)
			}
		}
	}
}

func normalize(v []float32) {
	var s0, s1, s2, s3 float32 // independent sums pipeline well
	i := 0
	for ; i+4 <= len(v); i += 4 {
		s0 += v[i] * v[i]
		s1 += v[i+1] * v[i+1]
		s2 += v[i+2] * v[i+2]
		s3 += v[i+3] * v[i+3]
	}
	for ; i < len(v); i++ {
		s0 += v[i] * v[i]
	}
	ss := float64(s0) + float64(s1) + float64(s2) + float64(s3)
	if ss == 0 {
		return
	}
	inv := float32(1 / math.Sqrt(ss))
	for i := range v {
		v[i] *= inv
	}
}

// Cosine returns the dot product of a and b, which is their cosine
// similarity when both are L2-normalized (as Embedder vectors are). Extra
// elements of the longer slice are ignored.
func Cosine(a, b []float32) float32 {
	n := min(len(a), len(b))
	a, b = a[:n], b[:n]
	var s float32
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}
