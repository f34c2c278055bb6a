package embed

import (
	"slices"
	"sync"
)

// Guard reports whether two prompts whose vectors are similar may still not
// share an answer: true means the pair must NOT hit. The cache calls it after
// a vector match. It refuses when
//
//   - the prompts are in different scripts or languages (function-word
//     guess for Latin-script languages);
//   - the multisets of numbers differ (a lone 1 counts as the article "a"),
//     or the sets of negations, dates, units, language names, programming
//     languages and formats, or output formats differ;
//   - one prompt is the other with two phrases swapped around a common
//     middle ("convert X to Y" / "convert Y to X");
//   - after dropping function words and fillers, exactly one content word
//     differs on each side ("Do you ship to Canada?" / "... to Mexico?")
//     unless the two words are a common typo of each other (a transposed pair
//     or a doubled letter), or one prompt adds content words to the other
//     ("What is the refund policy?" / "... for electronics?").
//
// Guard(a, b) == Guard(b, a), and Guard(a, a) is false.
func Guard(a, b string) bool {
	g := guardPool.Get().(*guardScratch)
	defer guardPool.Put(g)
	g.a.parse(&g.tk, a)
	g.b.parse(&g.tk, b)
	return g.refuse() != ""
}

// guardReason is Guard with the name of the rule that refused ("" for none).
func guardReason(a, b string) string {
	g := guardPool.Get().(*guardScratch)
	defer guardPool.Put(g)
	g.a.parse(&g.tk, a)
	g.b.parse(&g.tk, b)
	return g.refuse()
}

type gtok struct {
	h     uint64
	off   int32 // form bytes in the side's arena
	n     int32
	class uint8
	stop  bool
}

type guardSide struct {
	toks    []gtok
	arena   []byte
	scripts [numScripts]int
	langs   [8]int
	inv     bool
	nums    []uint64 // numbers, sorted (multiset)
	exact   []uint64 // other exact tokens, sorted, unique
	content []uint64 // content words, sorted, unique
}

type guardScratch struct {
	tk    tokenizer
	a, b  guardSide
	onlyA []int // indexes into a.toks of content words missing in b
	onlyB []int
}

var guardPool = sync.Pool{New: func() any { return new(guardScratch) }}

var hashOne = fnvString("1")

const (
	maxSlot = 4  // longest differing phrase, in tokens, of the slot rule
	maxSwap = 64 // longest differing span, in tokens, checked for a swap
	maxDiff = 32 // most one-sided content words tracked
)

func (s *guardSide) parse(tk *tokenizer, text string) {
	s.toks, s.arena, s.nums, s.exact, s.content = s.toks[:0], s.arena[:0], s.nums[:0], s.exact[:0], s.content[:0]
	s.scripts, s.langs, s.inv = [numScripts]int{}, [8]int{}, false
	tk.reset(text)
	for {
		t, ok := tk.next()
		if !ok {
			break
		}
		s.toks = append(s.toks, gtok{h: t.hash, off: int32(len(s.arena)), n: int32(len(t.form)), class: t.class, stop: t.stop})
		s.arena = append(s.arena, t.form...)
		s.scripts[t.script]++
		for bit := 0; bit < 8; bit++ {
			if t.langs&(1<<bit) != 0 {
				s.langs[bit]++
			}
		}
		s.inv = s.inv || t.inv
		switch {
		case t.class == classNumber:
			if t.hash != hashOne {
				s.nums = append(s.nums, t.hash)
			}
		case t.class != classNone:
			s.exact = append(s.exact, t.hash^uint64(t.class)<<56)
		}
		if !t.stop && t.hash != hashOne {
			s.content = append(s.content, t.hash)
		}
	}
	slices.Sort(s.nums)
	slices.Sort(s.exact)
	s.exact = slices.Compact(s.exact)
	slices.Sort(s.content)
	s.content = slices.Compact(s.content)
}

func (s *guardSide) form(i int) []byte {
	t := s.toks[i]
	return s.arena[t.off : t.off+t.n]
}

// scriptSet is the set of scripts used by at least a fifth of the words.
func (s *guardSide) scriptSet() uint32 {
	total := 0
	for sc := scriptLatin; sc < numScripts; sc++ {
		total += s.scripts[sc]
	}
	var set uint32
	for sc := scriptLatin; sc < numScripts; sc++ {
		if n := s.scripts[sc]; n > 0 && n*5 >= total {
			set |= 1 << sc
		}
	}
	return set
}

// language guesses the language of a Latin-script text from its function
// words: the non-English language with the most hits if it beats English,
// else English (bit 0).
func (s *guardSide) language() int {
	best, bestN := 0, 0
	for bit := 1; bit < 8; bit++ {
		n := s.langs[bit]
		if bit == 1 && s.inv { // ¿ ¡: Spanish
			n += 2
		}
		if n > bestN {
			best, bestN = bit, n
		}
	}
	if bestN >= 2 && bestN > s.langs[0] {
		return best
	}
	return 0
}

// refuse applies the rules of Guard and names the first that refuses.
func (g *guardScratch) refuse() string {
	a, b := &g.a, &g.b
	if sa, sb := a.scriptSet(), b.scriptSet(); sa != 0 && sb != 0 && sa != sb {
		return "script"
	}
	if a.language() != b.language() {
		return "language"
	}
	if !slices.Equal(a.nums, b.nums) {
		return "number"
	}
	if !slices.Equal(a.exact, b.exact) {
		return "exact"
	}
	if swapped(a, b) {
		return "swap"
	}
	if g.slot() {
		return "slot"
	}
	// Content words on one side only.
	g.onlyA, g.onlyB = onlyIn(a, b, g.onlyA[:0]), onlyIn(b, a, g.onlyB[:0])
	if len(g.onlyA) > maxDiff || len(g.onlyB) > maxDiff {
		// Too different for the rules below to matter (or to afford).
		if (len(g.onlyA) == 0 && len(a.content) > 0) || (len(g.onlyB) == 0 && len(b.content) > 0) {
			return "addition"
		}
		return ""
	}
	// Pair off typos.
	for i := 0; i < len(g.onlyA); i++ {
		for j := 0; j < len(g.onlyB); j++ {
			if typo(a.form(g.onlyA[i]), b.form(g.onlyB[j])) {
				g.onlyA = slices.Delete(g.onlyA, i, i+1)
				g.onlyB = slices.Delete(g.onlyB, j, j+1)
				i--
				break
			}
		}
	}
	nA, nB := len(g.onlyA), len(g.onlyB)
	shared := len(a.content) - nA
	switch {
	case nA == 1 && nB == 1:
		return "substitution" // another entity or attribute
	case (nA == 0) != (nB == 0) && shared > 0:
		return "addition" // one prompt narrows or extends the other
	}
	return ""
}

// onlyIn appends the indexes of x's distinct content words missing from y.
func onlyIn(x, y *guardSide, dst []int) []int {
	for i, t := range x.toks {
		if t.stop || t.h == hashOne {
			continue
		}
		if _, found := slices.BinarySearch(y.content, t.h); found {
			continue
		}
		dup := false
		for _, j := range dst {
			if x.toks[j].h == t.h {
				dup = true
				break
			}
		}
		if !dup {
			dst = append(dst, i)
			if len(dst) > maxDiff {
				break
			}
		}
	}
	return dst
}

// swapped reports whether b is a with two phrases exchanged around a
// non-empty common middle: a = P X M Y S and b = P Y M X S.
func swapped(a, b *guardSide) bool {
	x, y := a.toks, b.toks
	if len(x) != len(y) {
		return false
	}
	p := 0
	for p < len(x) && x[p].h == y[p].h {
		p++
	}
	if p == len(x) {
		return false
	}
	e := len(x)
	for e > p && x[e-1].h == y[e-1].h {
		e--
	}
	x, y = x[p:e], y[p:e]
	n := len(x)
	if n > maxSwap {
		return false
	}
	eq := func(u, v []gtok) bool {
		for i := range u {
			if u[i].h != v[i].h {
				return false
			}
		}
		return true
	}
	for i := 1; i < n; i++ { // |X|
		for j := 1; i+j < n; j++ { // |Y|; |M| = n-i-j >= 1
			if eq(x[:i], y[n-i:]) && eq(x[n-j:], y[:j]) && eq(x[i:n-j], y[j:n-i]) {
				return true
			}
		}
	}
	return false
}

// typo reports whether u and v differ by one adjacent transposition
// ("captial"/"capital") or one doubled letter ("pasword"/"password").
func typo(u, v []byte) bool {
	if len(u) < 4 || len(v) < 4 {
		return false
	}
	if len(u) == len(v) {
		i := 0
		for i < len(u) && u[i] == v[i] {
			i++
		}
		return i+1 < len(u) && u[i] == v[i+1] && u[i+1] == v[i] && string(u[i+2:]) == string(v[i+2:])
	}
	if len(u) > len(v) {
		u, v = v, u
	}
	if len(v) != len(u)+1 {
		return false
	}
	i := 0
	for i < len(u) && u[i] == v[i] {
		i++
	}
	// v has an extra byte at i; it must double a neighbour.
	if string(u[i:]) != string(v[i+1:]) {
		return false
	}
	return (i > 0 && v[i] == v[i-1]) || (i+1 < len(v) && v[i] == v[i+1])
}

// slot reports whether a and b are one frame with one short slot filled
// differently: a = P X S and b = P Y S with X and Y of at most maxSlot
// tokens, each holding a content word not explained by a typo of the
// other, and at least two content words in the frame P S. "Is it safe to
// drink tap water in Mexico City?" / "... in Bangkok?".
func (g *guardScratch) slot() bool {
	x, y := g.a.toks, g.b.toks
	p := 0
	for p < len(x) && p < len(y) && x[p].h == y[p].h {
		p++
	}
	e := 0
	for e < len(x)-p && e < len(y)-p && x[len(x)-1-e].h == y[len(y)-1-e].h {
		e++
	}
	xs, ys := x[p:len(x)-e], y[p:len(y)-e]
	if len(xs) == 0 || len(ys) == 0 || len(xs) > maxSlot || len(ys) > maxSlot {
		return false
	}
	frame := 0
	for _, t := range x[:p] {
		if !t.stop {
			frame++
		}
	}
	for _, t := range x[len(x)-e:] {
		if !t.stop {
			frame++
		}
	}
	if frame < 2 {
		return false
	}
	content := func(ts []gtok, off int, s *guardSide, other []gtok, os *guardSide, ooff int) bool {
		for i, t := range ts {
			if t.stop || t.h == hashOne {
				continue
			}
			explained := false
			for j, u := range other {
				if !u.stop && typo(s.form(off+i), os.form(ooff+j)) {
					explained = true
					break
				}
			}
			if !explained {
				return true
			}
		}
		return false
	}
	return content(xs, p, &g.a, ys, &g.b, p) && content(ys, p, &g.b, xs, &g.a, p)
}
