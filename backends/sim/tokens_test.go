package sim

import (
	"math"
	"strings"
	"testing"
)

func TestCountTokens(t *testing.T) {
	cases := []struct {
		in   string
		want int
	}{
		{"", 0},
		{"   \n\t", 0},
		{"the", 1},
		{"data", 1},
		{"hello", 2}, // hell + o
		{"internationalization", 5},
		{"Hello, world!", 6}, // Hell o , worl d !
		{"a.b", 3},
		{"héllo", 3}, // h, é, llo
		{"日本", 2},
		{"x1y2z3", 2},
	}
	for _, c := range cases {
		if got := CountTokens(c.in); got != c.want {
			t.Errorf("CountTokens(%q) = %d, want %d", c.in, got, c.want)
		}
	}
}

func TestGeneratedTextTokenCount(t *testing.T) {
	for seed := range uint64(50) {
		g := newTextGen(seed)
		var text []byte
		for i := range 300 {
			before := len(text)
			text = g.next(text, i == 0)
			if n := CountTokens(string(text[before:])); n != 1 {
				t.Fatalf("token %d %q counts as %d tokens", i, text[before:], n)
			}
		}
		if n := CountTokens(string(text)); n != 300 {
			t.Fatalf("seed %d: 300 generated tokens count as %d: %s", seed, n, text)
		}
	}
}

func TestBlockHashChain(t *testing.T) {
	h := func(s string) []uint64 {
		th := tokenHasher{blockSize: 4}
		th.addText(s)
		return th.blocks
	}
	a := h("a b c d e f g h i")   // 9 tokens: 2 full blocks
	b := h("a b c d e f g h j k") // same first 8
	c := h("z b c d e f g h")     // differs in block 0, so block 1 differs too
	if len(a) != 2 || a[0] != b[0] || a[1] != b[1] {
		t.Errorf("equal prefixes hash differently: %x %x", a, b)
	}
	if c[0] == a[0] || c[1] == a[1] {
		t.Errorf("the chain does not carry the prefix: %x %x", a, c)
	}
}

func cos(a, b []float32) float64 {
	var s float64
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}

func TestEmbeddingSimilarity(t *testing.T) {
	v := func(s string) []float32 {
		x := make([]float32, 256)
		embed(x, textInput{text: s})
		return x
	}
	base := v("the quick brown fox jumps")
	if n := cos(base, base); math.Abs(n-1) > 1e-5 {
		t.Fatalf("not unit length: %v", n)
	}
	if cos(base, v("The QUICK brown fox jumps")) < 0.9999 {
		t.Error("case changes the embedding")
	}
	near := cos(base, v("the quick brown fox sleeps"))
	far := cos(base, v("stock markets rallied today"))
	if near < 0.6 || math.Abs(far) > 0.3 || near <= far {
		t.Errorf("shared words cos %v, unrelated cos %v", near, far)
	}
	for _, s := range []string{"", "!!!", strings.Repeat("日", 3)} {
		if n := cos(v(s), v(s)); math.Abs(n-1) > 1e-5 {
			t.Errorf("%q: |v|^2 = %v", s, n)
		}
	}
}

// TestGeneratedCitations: with numbered sources in the prompt each
// sentence cites one, in turn, a token at a time.
func TestGeneratedCitations(t *testing.T) {
	if n := citeCount("Answer from these.\n\nSources:\n\n[1] a\ntext\n\n[2] b\nmore\n[4] not in sequence"); n != 2 {
		t.Fatalf("citeCount = %d, want 2", n)
	}
	if n := citeCount("no sources [1] here"); n != 0 {
		t.Fatalf("citeCount of inline text = %d, want 0", n)
	}
	for seed := range uint64(20) {
		g := newTextGen(seed)
		g.cites = 3
		var text []byte
		for i := range 200 {
			before := len(text)
			text = g.next(text, i == 0)
			if n := CountTokens(string(text[before:])); n != 1 {
				t.Fatalf("token %d %q counts as %d tokens", i, text[before:], n)
			}
		}
		s := string(text)
		for _, want := range []string{" [1].", " [2].", " [3]."} {
			if !strings.Contains(s, want) {
				t.Fatalf("seed %d: no %q in %s", seed, want, s)
			}
		}
		if strings.Contains(s, "[4]") {
			t.Fatalf("seed %d: cites a source that is not there: %s", seed, s)
		}
	}
}
