package embed

import (
	"math"
	"testing"
)

var fuzzSeeds = []string{
	"", "How do I reset my password?", "don't can't 3.12 200,000 °C 15% $45", "Wie setze ich mein Passwort zurück?",
	"注文を追跡するにはどうすればいいですか？", "e\u0301\u0301'''n't", "ＡＢＣ１２ ﬁ ß", "\xff\xfe invalid utf8", "1,2,3,4,5.6.7",
}

func FuzzEmbed(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	e := NewBuiltin(0)
	dst := make([]float32, e.Dim())
	f.Fuzz(func(t *testing.T, s string) {
		dst = e.EmbedInto(s, dst)
		var ss float64
		for _, x := range dst {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				t.Fatalf("%q: non-finite element", s)
			}
			ss += float64(x) * float64(x)
		}
		if ss != 0 && math.Abs(math.Sqrt(ss)-1) > 1e-4 {
			t.Fatalf("%q: norm %v, want 1 or 0", s, math.Sqrt(ss))
		}
	})
}

func FuzzGuard(f *testing.F) {
	for i, s := range fuzzSeeds {
		f.Add(s, fuzzSeeds[(i+1)%len(fuzzSeeds)])
	}
	f.Add("Convert 10 kg to lbs", "Convert 10 lbs to kg")
	f.Fuzz(func(t *testing.T, a, b string) {
		if Guard(a, b) != Guard(b, a) {
			t.Fatalf("Guard(%q, %q) is not symmetric", a, b)
		}
		if Guard(a, a) {
			t.Fatalf("Guard(%q, itself) = true", a)
		}
	})
}
