package sim

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The simulator's tokenizer is deliberately simple and documented so that
// clients can predict counts: whitespace is free; a run of ASCII letters and
// digits is cut into tokens of at most 4 characters; every other character
// (punctuation, symbols, any non-ASCII rune) is one token. English text comes
// out near the familiar "one token per 4 characters".

const maxWordTokenLen = 4

// tokenHasher accumulates the token count of a text and the hash chain of its
// full KV blocks (see kvCache). A zero blockSize disables block hashing.
type tokenHasher struct {
	blockSize int
	tokens    int
	inBlock   int
	blockHash uint64
	prevHash  uint64
	blocks    []uint64
	all       uint64 // hash of every token so far: seeds the generated text
}

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func (h *tokenHasher) addToken(t uint64) {
	h.tokens++
	h.all = (h.all ^ t) * fnvPrime
	if h.blockSize == 0 {
		return
	}
	if h.inBlock == 0 {
		h.blockHash = h.prevHash ^ fnvOffset
	}
	h.blockHash = (h.blockHash ^ t) * fnvPrime
	h.blockHash ^= h.blockHash >> 29
	h.inBlock++
	if h.inBlock == h.blockSize {
		h.blocks = append(h.blocks, h.blockHash)
		h.prevHash = h.blockHash
		h.inBlock = 0
	}
}

// addText tokenizes s and feeds each token's hash.
func (h *tokenHasher) addText(s string) {
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\f' || c == '\v':
			i++
		case isWordByte(c):
			j := i
			for j < len(s) && j-i < maxWordTokenLen && isWordByte(s[j]) {
				j++
			}
			h.addToken(hashString(s[i:j]))
			i = j
		default:
			r, n := utf8.DecodeRuneInString(s[i:])
			h.addToken(uint64(r)*0x9E3779B97F4A7C15 + 1)
			i += n
		}
	}
}

// addTokenIDs feeds pre-tokenized input (a prompt given as token ids).
func (h *tokenHasher) addTokenIDs(ids []int64) {
	for _, id := range ids {
		h.addToken(uint64(id)*0xBF58476D1CE4E5B9 + 7)
	}
}

func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func hashString(s string) uint64 {
	h := uint64(fnvOffset)
	for i := 0; i < len(s); i++ {
		h = (h ^ uint64(s[i])) * fnvPrime
	}
	return h
}

// CountTokens returns the number of tokens of s under the simulator's tokenizer.
func CountTokens(s string) int {
	var h tokenHasher
	h.addText(s)
	return h.tokens
}

// splitmix64 is the generator behind all deterministic draws.
type splitmix64 uint64

func (s *splitmix64) next() uint64 {
	*s += 0x9E3779B97F4A7C15
	z := uint64(*s)
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	return z ^ (z >> 31)
}

// float returns a uniform value in [0, 1).
func (s *splitmix64) float() float64 { return float64(s.next()>>11) / (1 << 53) }

// words are the vocabulary of the generated text; each is one token.
var words = [...]string{
	"the", "of", "and", "to", "in", "is", "it", "that", "for", "on", "with", "as", "was", "by",
	"at", "from", "this", "be", "or", "an", "are", "not", "but", "can", "data", "node", "time",
	"load", "fast", "path", "each", "some", "more", "than", "when", "then", "all", "one", "two",
	"new", "way", "set", "list", "plan", "test", "run", "task", "good", "next", "form", "work",
	"text", "line", "page", "code", "key", "map", "rule", "call", "step", "open", "note", "mode",
	"unit",
}

// textGen produces deterministic pseudo-text one token at a time.
type textGen struct {
	rng      splitmix64
	sentence int // words left in the current sentence
	capital  bool
	// cites is the number of numbered sources in the prompt (citeCount);
	// when there are some, each sentence ends by citing one, " [k]", as a
	// model told to cite its sources would (the retrieval stage's tests
	// and demo need answers with citations).
	cites     int
	citeStep  int // tokens of the current sentence's citation out
	sentences int
	// lead is text the answer starts with, a token a piece, before the
	// pseudo-text (the tool mode's quotes of tool results).
	lead string
}

func newTextGen(seed uint64) textGen {
	return textGen{rng: splitmix64(seed), capital: true}
}

// newSeqGen returns the text generator of a sequence.
func newSeqGen(q *seq) textGen {
	g := newTextGen(q.textSeed)
	g.cites = q.cites
	if q.tool != nil {
		g.lead = q.tool.lead
	}
	return g
}

// next appends the next token's text (with its leading space) to dst.
func (g *textGen) next(dst []byte, first bool) []byte {
	if g.lead != "" {
		n := nextTokenEnd(g.lead)
		if strings.TrimSpace(g.lead[n:]) == "" {
			n = len(g.lead)
		}
		dst = append(dst, g.lead[:n]...)
		g.lead = g.lead[n:]
		return dst
	}
	if g.sentence == 0 && !g.capital {
		if g.cites > 0 && g.citeStep < 3 { // " [", "k", "]": a token each
			g.citeStep++
			switch g.citeStep {
			case 1:
				return append(dst, " ["...)
			case 2:
				return strconv.AppendInt(dst, int64(1+g.sentences%g.cites), 10)
			}
			return append(dst, ']')
		}
		g.citeStep = 0
		g.sentences++
		g.capital = true
		g.sentence = -1
		return append(dst, '.')
	}
	if g.sentence <= 0 {
		g.sentence = 6 + int(g.rng.next()%12)
	}
	w := words[g.rng.next()%uint64(len(words))]
	if !first {
		dst = append(dst, ' ')
	}
	if g.capital {
		dst = append(dst, w[0]-'a'+'A')
		dst = append(dst, w[1:]...)
		g.capital = false
	} else {
		dst = append(dst, w...)
	}
	g.sentence--
	if g.sentence == 0 {
		g.capital = false // next token is the full stop
	}
	return dst
}

// outputDist is a parsed --output-len.
type outputDist struct {
	kind   string // max, fixed, uniform, normal, exp
	a, b   float64
	fixedN int
}

func parseOutputLen(s string) (outputDist, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "max" {
		return outputDist{kind: "max"}, nil
	}
	if n, err := strconv.Atoi(s); err == nil {
		if n < 1 {
			return outputDist{}, errors.New("a fixed length must be >= 1")
		}
		return outputDist{kind: "fixed", fixedN: n}, nil
	}
	kind, args, ok := strings.Cut(s, ":")
	if !ok {
		return outputDist{}, errors.New(`want max, N, uniform:A-B, normal:MEAN,SD or exp:MEAN`)
	}
	num := func(p string) (float64, error) {
		f, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) {
			return 0, fmt.Errorf("bad number %q", p)
		}
		return f, nil
	}
	d := outputDist{kind: kind}
	var err1, err2 error
	switch kind {
	case "uniform":
		lo, hi, ok := strings.Cut(args, "-")
		if !ok {
			return d, errors.New("want uniform:A-B")
		}
		d.a, err1 = num(lo)
		d.b, err2 = num(hi)
		if err1 == nil && err2 == nil && (d.a < 1 || d.b < d.a) {
			return d, errors.New("want 1 <= A <= B")
		}
	case "normal":
		m, sd, ok := strings.Cut(args, ",")
		if !ok {
			return d, errors.New("want normal:MEAN,SD")
		}
		d.a, err1 = num(m)
		d.b, err2 = num(sd)
	case "exp":
		d.a, err1 = num(args)
		if err1 == nil && d.a <= 0 {
			return d, errors.New("want exp:MEAN with MEAN > 0")
		}
	default:
		return d, fmt.Errorf("unknown distribution %q", kind)
	}
	if err1 != nil {
		return d, err1
	}
	return d, err2
}

// natural returns the length at which a completion would stop by itself, or 0
// for "no natural stop" (run to the limit).
func (d outputDist) natural(seed uint64) int {
	r := splitmix64(seed ^ 0x5851F42D4C957F2D)
	var v float64
	switch d.kind {
	case "fixed":
		return d.fixedN
	case "uniform":
		v = d.a + r.float()*(d.b-d.a+1)
	case "normal":
		// Box-Muller.
		u1, u2 := r.float(), r.float()
		v = d.a + d.b*math.Sqrt(-2*math.Log(1-u1))*math.Cos(2*math.Pi*u2)
	case "exp":
		v = -d.a * math.Log(1-r.float())
	default:
		return 0
	}
	n := int(v)
	if n < 1 {
		n = 1
	}
	return n
}

// citeCount returns the number of numbered sources in a system message's
// text, in the form the gateway's retrieval stage writes them: lines
// "[1] ...", "[2] ...", numbered from 1 without gaps. 0 when there are
// none.
func citeCount(text string) int {
	n := 0
	for line := range strings.SplitSeq(text, "\n") {
		want := "[" + strconv.Itoa(n+1) + "] "
		if strings.HasPrefix(line, want) {
			n++
		}
	}
	return n
}
