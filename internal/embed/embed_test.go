package embed

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

// forms returns the canonical forms of text's tokens, space-separated.
func forms(text string) string {
	var tk tokenizer
	tk.reset(text)
	var out []string
	for {
		t, ok := tk.next()
		if !ok {
			return strings.Join(out, " ")
		}
		out = append(out, string(t.form))
	}
}

func TestNormalize(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"  !!  ?? ", ""},
		{"How do I Reset my Router?", "how do i reset my router"},
		{"ＡＢＣ１２", "abc 12"},                          // full-width
		{"Beyoncé Ærø straße", "beyonc aero strass"}, // accents, ligature letters, stemmed
		{"ﬁle", "fil"},             // ligature
		{"e\u0301clair", "eclair"}, // combining mark
		{"don't can't won't isn't", "do not can not will not is not"},
		{"it's Canada's I'm we've", "it canada i we"},
		{"3.12 200,000 1,2 007", "3.12 200000 1 2 7"},
		{"16px 9am 2nd x^2 401(k)", "16 px 9 am 2 nd x 2 401 k"},
		{"100°F °C 15% $45", "100 fahrenheit celsius 15 percent usd 45"},
		{"km kilometers kilometre miles lbs", "kilometer kilometer kilometer mil pound"},
		{"matches matched matching match", "match match match match"},
		{"dictionaries dicts values", "dictionary dictionary valu"},
		{"golang js postgres fifteen", "go javascript postgresql 15"},
		{"stopped running installs", "stop run install"},
		{"Was sind die Symptome", "was sind die symptom"},
		{"注文を追跡", "注文を追跡"},
	}
	for _, tt := range tests {
		if got := forms(tt.in); got != tt.want {
			t.Errorf("forms(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestDeterministic(t *testing.T) {
	texts := []string{"How do I reset my password?", "Wie setze ich mein Passwort zurück?", "", "2^10"}
	a, b := NewBuiltin(0), NewBuiltin(0)
	for _, s := range texts {
		va, vb := a.EmbedInto(s, nil), b.EmbedInto(s, nil)
		for i := range va {
			if va[i] != vb[i] {
				t.Fatalf("%q: two instances disagree at %d: %v vs %v", s, i, va[i], vb[i])
			}
		}
		again := a.EmbedInto(s, make([]float32, 3, a.Dim()))
		for i := range va {
			if again[i] != va[i] {
				t.Fatalf("%q: reused dst disagrees at %d", s, i)
			}
		}
	}
	// A pinned value guards against hash or feature changes that would
	// silently invalidate vectors stored by earlier processes.
	v := a.EmbedInto("hello world", nil)
	if c := Cosine(v, a.EmbedInto("Hello, world!", nil)); c < 0.999 {
		t.Errorf("case and punctuation changed the vector: cosine %v", c)
	}
}

func norm(v []float32) float64 {
	var s float64
	for _, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return math.NaN()
		}
		s += float64(x) * float64(x)
	}
	return math.Sqrt(s)
}

func TestUnitLength(t *testing.T) {
	for _, dim := range []int{0, 1, 7, 64, 512, 1024} {
		e := NewBuiltin(dim)
		if dim > 0 && e.Dim() != dim {
			t.Fatalf("NewBuiltin(%d).Dim() = %d", dim, e.Dim())
		}
		for _, s := range []string{"a", "What is the capital of France?", "日本語のテキスト", "100 % $", strings.Repeat("word ", 500)} {
			v := e.EmbedInto(s, nil)
			if len(v) != e.Dim() {
				t.Fatalf("dim %d: len %d", e.Dim(), len(v))
			}
			if n := norm(v); math.Abs(n-1) > 1e-5 {
				t.Errorf("dim %d, %q: norm %v, want 1", e.Dim(), s[:min(len(s), 20)], n)
			}
		}
	}
	if NewBuiltin(-3).Dim() != DefaultDim || NewBuiltin(0).Name() != "builtin" {
		t.Error("defaults: want DefaultDim and name builtin")
	}
}

func TestEmptyText(t *testing.T) {
	e := NewBuiltin(0)
	for _, s := range []string{"", "   ", "?!.,;:", "\u0301\u0301"} {
		v := e.EmbedInto(s, nil)
		if n := norm(v); n != 0 {
			t.Errorf("%q: norm %v, want the zero vector", s, n)
		}
		if c := Cosine(v, e.EmbedInto("hello", nil)); c != 0 {
			t.Errorf("%q: cosine with a text %v, want 0", s, c)
		}
	}
}

func TestLongText(t *testing.T) {
	var b strings.Builder
	words := []string{"gateway", "latency", "Größe", "42", "don't", "日本", "x^2", "supercalifragilisticexpialidocious" + strings.Repeat("z", 200)}
	for i := 0; b.Len() < 1<<20; i++ {
		b.WriteString(words[i%len(words)])
		b.WriteByte(' ')
	}
	text := b.String()
	e := NewBuiltin(0)
	start := time.Now()
	v := e.EmbedInto(text, nil)
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("1 MB text took %v", d)
	}
	if n := norm(v); math.Abs(n-1) > 1e-5 {
		t.Errorf("norm %v", n)
	}
	start = time.Now()
	_ = Guard(text, text[1:])
	_ = Guard("x "+text+" y", "y "+text+" x")
	_ = Guard(text, strings.ToUpper(text))
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Guard on 1 MB texts took %v", d)
	}
}

func TestEmbed(t *testing.T) {
	e := NewBuiltin(64)
	texts := []string{"one", "two words", ""}
	vs, err := e.Embed(context.Background(), texts)
	if err != nil || len(vs) != len(texts) {
		t.Fatalf("Embed: %v, %d vectors", err, len(vs))
	}
	for i, v := range vs {
		want := e.EmbedInto(texts[i], nil)
		if len(v) != 64 || cap(v) != 64 || Cosine(v, want) != Cosine(want, want) {
			t.Errorf("vector %d differs from EmbedInto", i)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := e.Embed(ctx, texts); !errors.Is(err, context.Canceled) {
		t.Errorf("Embed with a cancelled context: %v, want context.Canceled", err)
	}
	var _ Embedder = e
}

func TestSimilarity(t *testing.T) {
	e := NewBuiltin(0)
	sim := func(a, b string) float32 { return Cosine(e.EmbedInto(a, nil), e.EmbedInto(b, nil)) }
	if s := sim("How do I reset my password?", "how do i reset my pasword"); s < DefaultThreshold {
		t.Errorf("typo paraphrase: %v < %v", s, DefaultThreshold)
	}
	if s := sim("How do I reset my password?", "What is the boiling point of ethanol?"); s > 0.2 {
		t.Errorf("unrelated prompts: %v", s)
	}
	if c := Cosine([]float32{1, 0, 0}, []float32{0.6, 0.8}); c != 0.6 {
		t.Errorf("Cosine = %v", c)
	}
}

func TestGuard(t *testing.T) {
	tests := []struct {
		a, b   string
		refuse string // rule expected to refuse; "" for allowed
	}{
		{"How do I reset my router?", "how do i reset my router", ""},
		{"Who discovered penicillin?", "Who discovered penicillin? Thanks!", ""},
		{"What is photosynthesis?", "explain photosynthesis", ""},
		{"How do I reset my pasword", "how do i reset my password", ""},
		{"whats the captial of italy", "What is the capital of Italy?", ""},
		{"Convert 5 miles to kilometers", "how many km is 5 miles?", ""},
		{"What is 15% of 80?", "calculate fifteen percent of 80", ""},
		{"How many grams are in a kilogram?", "1 kg = how many g", ""},
		{"What is 1000 divided by 8?", "1000 divided by 8?", ""},
		{"Explain Big O notation", "what is big-o notation? explain please", ""},
		{"What's the weather usually like in Lisbon in May?", "typical May weather in Lisbon?", "substitution"},
		{"May I bring a pet?", "Can I bring a pet?", ""},
		{"What are the symptoms of the flu?", "Was sind die Symptome der Grippe?", "language"},
		{"Who wrote Don Quixote?", "¿Quién escribió Don Quijote?", "language"},
		{"What does 'carpe diem' mean?", "Что означает 'carpe diem'?", "script"},
		{"How do I track my order?", "注文を追跡するにはどうすればいいですか？", "script"},
		{"Python: round a float to 2 decimal places", "Python: round a float to 3 decimal places", "number"},
		{"How do I install Python 3.12?", "How do I install Python 3.8?", "number"},
		{"Calculate a $200,000 mortgage at 6%", "Calculate a $200,000 mortgage at 7%", "number"},
		{"Which Go types are comparable?", "Which Go types are not comparable?", "exact"},
		{"What happens if I pay on time?", "What happens if I don't pay on time?", "exact"},
		{"Summarize the arguments for a four-day week", "Summarize the arguments against a four-day week", "exact"},
		{"Will my order arrive by Friday?", "Will my order arrive by Monday?", "exact"},
		{"Is the office open in May?", "Is the office open in June?", "exact"},
		{"How tall is Mount Everest in feet?", "How tall is Mount Everest in meters?", "exact"},
		{"Convert 3pm UTC to PST", "Convert 3am UTC to PST", "exact"},
		{"Answer in French.", "Answer in German.", "exact"},
		{"Write a bank account class in Python", "Write a bank account class in Java", "exact"},
		{"Explain TCP in a table", "Explain TCP in one paragraph", "exact"},
		{"Convert 10 kg to lbs", "Convert 10 lbs to kg", "swap"},
		{"Is Canada bigger than the United States?", "Is the United States bigger than Canada?", "swap"},
		{"Can I forward my work email to my personal email?", "Can I forward my personal email to my work email?", "swap"},
		{"Do you ship to Canada?", "Do you ship to Mexico?", "substitution"},
		{"What is the capital of Australia?", "What is the capital of Austria?", "substitution"},
		{"What's the best time of year to visit Iceland?", "What's the best time of year to visit Ireland?", "slot"},
		{"Is it safe to drink tap water in Mexico City?", "Is it safe to drink tap water in Bangkok?", "slot"},
		{"What is the refund policy for electronics?", "What is the refund policy?", "addition"},
		{"Explain how HTTPS works", "Explain how the TLS handshake works in HTTPS", "addition"},
	}
	for _, tt := range tests {
		got := guardReason(tt.a, tt.b)
		if got != tt.refuse {
			t.Errorf("Guard(%q, %q): rule %q, want %q", tt.a, tt.b, got, tt.refuse)
		}
		if Guard(tt.a, tt.b) != (tt.refuse != "") || Guard(tt.b, tt.a) != Guard(tt.a, tt.b) {
			t.Errorf("Guard(%q, %q) is not %v both ways", tt.a, tt.b, tt.refuse != "")
		}
		if Guard(tt.a, tt.a) {
			t.Errorf("Guard(%q, itself) = true", tt.a)
		}
	}
}

func TestTypo(t *testing.T) {
	tests := []struct {
		u, v string
		want bool
	}{
		{"captial", "capital", true}, {"pasword", "password", true}, {"instal", "install", true},
		{"reciev", "receiv", true}, {"iceland", "ireland", false}, {"ethanol", "methanol", false},
		{"austria", "australia", false}, {"abc", "acb", false}, {"same", "same", false},
	}
	for _, tt := range tests {
		if got := typo([]byte(tt.u), []byte(tt.v)); got != tt.want {
			t.Errorf("typo(%q, %q) = %v", tt.u, tt.v, got)
		}
	}
}
