package eval

import (
	"math"
	"strings"
	"testing"
)

// Two passages: a.md[10,30) and b.md[0,20).
var twoPassages = Question{
	ID:   "t1",
	Kind: KindMulti,
	Relevant: []Passage{
		{Doc: "a.md", Text: strings.Repeat("x", 20), Start: 10, End: 30},
		{Doc: "b.md", Text: strings.Repeat("y", 20), Start: 0, End: 20},
	},
}

// Results of twoPassages by what they cover.
var (
	hitA   = Retrieved{DocPath: "a.md", Start: 0, End: 20}   // 10 of 20 bytes of passage a
	hitB   = Retrieved{DocPath: "b.md", Start: 5, End: 100}  // 15 of 20 bytes of passage b
	bigA   = Retrieved{DocPath: "a.md", Start: 0, End: 1000} // a only: b is in another document
	missA  = Retrieved{DocPath: "a.md", Start: 21, End: 100} // 9 of 20 bytes: less than half
	missC  = Retrieved{DocPath: "c.md", Start: 10, End: 30}  // the right offsets in the wrong document
	wholeA = Retrieved{DocPath: "./a.md", Start: 10, End: 30}
)

func TestCovers(t *testing.T) {
	p := twoPassages.Relevant[0] // a.md [10,30), 20 bytes
	tests := []struct {
		name string
		r    Retrieved
		want bool
	}{
		{"exact", Retrieved{DocPath: "a.md", Start: 10, End: 30}, true},
		{"path cleaned", wholeA, true},
		{"contains it", Retrieved{DocPath: "a.md", Start: 0, End: 100}, true},
		{"first half", Retrieved{DocPath: "a.md", Start: 0, End: 20}, true},
		{"second half", Retrieved{DocPath: "a.md", Start: 20, End: 40}, true},
		{"inside, half", Retrieved{DocPath: "a.md", Start: 15, End: 25}, true},
		{"one byte short", Retrieved{DocPath: "a.md", Start: 21, End: 40}, false},
		{"touching", Retrieved{DocPath: "a.md", Start: 30, End: 60}, false},
		{"before", Retrieved{DocPath: "a.md", Start: 0, End: 5}, false},
		{"other document", Retrieved{DocPath: "b.md", Start: 10, End: 30}, false},
		{"no offsets, no text", Retrieved{DocPath: "a.md"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Covers(p, tc.r); got != tc.want {
				t.Errorf("Covers(%+v, %+v) = %v, want %v", p, tc.r, got, tc.want)
			}
		})
	}
}

func TestCoversByText(t *testing.T) {
	// Six words: a run of three is half.
	p := Passage{Doc: "a.md", Text: "the quick brown fox jumps high", Start: 100, End: 130}
	tests := []struct {
		name, text string
		want       bool
	}{
		{"whole", "and then the quick brown fox jumps high over", true},
		{"reflowed", "the quick\n\tbrown  fox\njumps high", true},
		{"first three", "... said the quick brown", true},
		{"last three", "fox jumps high Then", true},
		{"punctuation is part of a word", "fox jumps high. Then", false},
		{"two", "quick brown dog", false},
		{"scattered", "the brown jumps quick fox high", false},
		{"case differs", "The Quick Brown fox", false},
		{"empty", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := Retrieved{DocPath: "a.md", Text: tc.text}
			if got := Covers(p, r); got != tc.want {
				t.Errorf("Covers(%q, %q) = %v, want %v", p.Text, tc.text, got, tc.want)
			}
		})
	}
}

func TestRecallAtK(t *testing.T) {
	q := twoPassages
	tests := []struct {
		name   string
		ranked []Retrieved
		k      int
		want   float64
	}{
		{"none", nil, 5, 0},
		{"misses", []Retrieved{missA, missC}, 5, 0},
		{"one of two", []Retrieved{missC, hitA}, 5, 0.5},
		{"both", []Retrieved{hitB, missA, hitA}, 5, 1},
		{"second beyond k", []Retrieved{hitB, missA, hitA}, 2, 0.5},
		{"k 0 is the whole list", []Retrieved{missC, missC, missC, missC, missC, hitA}, 0, 0.5},
		{"same passage twice", []Retrieved{hitA, wholeA}, 5, 0.5},
		{"k larger than list", []Retrieved{hitA, hitB}, 10, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := RecallAtK(q, tc.ranked, tc.k); !near(got, tc.want) {
				t.Errorf("RecallAtK(k=%d) = %v, want %v", tc.k, got, tc.want)
			}
		})
	}
	if got := RecallAtK(Question{}, []Retrieved{hitA}, 5); got != 0 {
		t.Errorf("RecallAtK without passages = %v, want 0", got)
	}
}

func TestMRR(t *testing.T) {
	q := twoPassages
	tests := []struct {
		name      string
		ranked    []Retrieved
		want      float64
		wantFirst int
	}{
		{"none", nil, 0, 0},
		{"misses", []Retrieved{missA, missC}, 0, 0},
		{"first", []Retrieved{hitA, missC}, 1, 1},
		{"second", []Retrieved{missC, hitB}, 0.5, 2},
		{"fourth", []Retrieved{missA, missC, missA, bigA, hitB}, 0.25, 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := MRR(q, tc.ranked); !near(got, tc.want) {
				t.Errorf("MRR = %v, want %v", got, tc.want)
			}
			if got := FirstRelevant(q, tc.ranked); got != tc.wantFirst {
				t.Errorf("FirstRelevant = %d, want %d", got, tc.wantFirst)
			}
		})
	}
}

func TestNDCGAtK(t *testing.T) {
	// Discounts: rank 1 → 1, rank 2 → 1/log2(3) = 0.63093, rank 3 → 0.5.
	const d2 = 0.6309297535714575
	idcg2 := 1 + d2 // two passages
	one := Question{Relevant: twoPassages.Relevant[:1]}
	// coversBoth covers both passages of bothInA.
	bothInA := Question{Relevant: []Passage{
		{Doc: "a.md", Text: "p", Start: 0, End: 10},
		{Doc: "a.md", Text: "q", Start: 50, End: 60},
	}}
	coversBoth := Retrieved{DocPath: "a.md", Start: 0, End: 100}
	coversP := Retrieved{DocPath: "a.md", Start: 0, End: 10}
	coversQ := Retrieved{DocPath: "a.md", Start: 50, End: 60}

	tests := []struct {
		name   string
		q      Question
		ranked []Retrieved
		k      int
		want   float64
	}{
		{"none", twoPassages, nil, 5, 0},
		{"ideal", twoPassages, []Retrieved{hitA, hitB}, 5, 1},
		{"ideal swapped", twoPassages, []Retrieved{hitB, hitA}, 5, 1},
		{"both lower", twoPassages, []Retrieved{missC, hitA, hitB}, 5, (d2 + 0.5) / idcg2},
		{"one at top", twoPassages, []Retrieved{hitA, missC}, 5, 1 / idcg2},
		{"one at rank 2", twoPassages, []Retrieved{missC, hitB}, 5, d2 / idcg2},
		// The duplicate of passage a gains nothing.
		{"duplicate", twoPassages, []Retrieved{hitA, wholeA, hitB}, 5, (1 + 0.5) / idcg2},
		// k = 1: the ideal has one gain.
		{"k 1", twoPassages, []Retrieved{hitA, hitB}, 1, 1},
		{"k 1 miss", twoPassages, []Retrieved{missC, hitB}, 1, 0},
		// One passage, found at rank 3.
		{"single passage", one, []Retrieved{missA, missC, hitA}, 5, 0.5},
		// A chunk covering both passages gains 1; the next chunk, covering
		// p only, takes p and leaves q to the first by augmentation.
		{"augmenting", bothInA, []Retrieved{coversBoth, coversP}, 5, 1},
		{"augmenting, reversed", bothInA, []Retrieved{coversQ, coversBoth}, 5, 1},
		{"two chunks, one passage", bothInA, []Retrieved{coversP, coversP, coversQ}, 5, (1 + 0.5) / idcg2},
		{"k 0 is the whole list", twoPassages, []Retrieved{missC, missC, hitA}, 0, 0.5 / idcg2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := NDCGAtK(tc.q, tc.ranked, tc.k); !near(got, tc.want) {
				t.Errorf("NDCGAtK(k=%d) = %.6f, want %.6f", tc.k, got, tc.want)
			}
		})
	}
}

func TestReport(t *testing.T) {
	qs := []Question{
		{ID: "a", Kind: KindLexical, Relevant: twoPassages.Relevant[:1]},
		{ID: "b", Kind: KindParaphrase, Relevant: twoPassages.Relevant[1:]},
		twoPassages, // ID t1, multi
	}
	results := map[string][]Retrieved{
		"a":  {hitA},        // recall 1, RR 1, nDCG 1
		"b":  {missC, hitB}, // recall 1, RR 0.5, nDCG 1/log2(3)
		"t1": {missC},       // all 0
		"x":  {hitA},        // not a question: ignored
	}
	var rep Report
	row := rep.Add("bm25", qs, results)
	const d2 = 0.6309297535714575
	if row.All.Questions != 3 || !near(row.All.Recall, 2.0/3) || !near(row.All.MRR, 0.5) || !near(row.All.NDCG, (1+d2)/3) {
		t.Errorf("All = %+v, want 3 questions, recall 0.667, MRR 0.5, nDCG %.3f", row.All, (1+d2)/3)
	}
	if s := row.ByKind[KindParaphrase]; s.Questions != 1 || !near(s.MRR, 0.5) || !near(s.NDCG, d2) {
		t.Errorf("ByKind[paraphrase] = %+v", s)
	}
	if len(row.PerQuestion) != 3 || row.PerQuestion[1].FirstRank != 2 || row.PerQuestion[2].FirstRank != 0 {
		t.Errorf("PerQuestion = %+v", row.PerQuestion)
	}
	rep.Add("none", qs, nil)

	want := `run   questions  recall@5  MRR    nDCG@5
bm25  3          0.667     0.500  0.544
none  3          0.000     0.000  0.000

run   kind        questions  recall@5  MRR    nDCG@5
bm25  lexical     1          1.000     1.000  1.000
bm25  paraphrase  1          1.000     0.500  0.631
bm25  multi       1          0.000     0.000  0.000
none  lexical     1          0.000     0.000  0.000
none  paraphrase  1          0.000     0.000  0.000
none  multi       1          0.000     0.000  0.000
`
	if got := rep.String(); got != want {
		t.Errorf("table:\n%s\nwant:\n%s", got, want)
	}

	rep = Report{K: 1}
	rep.Add("k1", qs, results)
	if got := rep.String(); !strings.HasPrefix(got, "run  questions  recall@1  MRR    nDCG@1\nk1   3          0.333     0.500  0.333\n") {
		t.Errorf("K=1 table:\n%s", got)
	}
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
