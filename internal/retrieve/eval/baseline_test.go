package eval

import (
	"context"
	"math"
	"sort"
	"strings"
	"testing"
	"unicode"

	"switchyard/internal/embed"
)

// The baselines cut every document into windows of windowWords words,
// starting every windowStride words, so that each passage (at most
// MaxPassageWords words) lies whole in some window.
const (
	windowWords  = 200
	windowStride = windowWords - MaxPassageWords
	baselineK    = 5
	baselineN    = 10 // results per question
)

// TestBM25Baseline shows that the set is neither trivial nor impossible for
// a plain keyword search, and logs how the builtin embedder and a hybrid of
// the two do on the same windows. Only BM25 is asserted, loosely.
func TestBM25Baseline(t *testing.T) {
	ds := loadShipped(t)
	wins := windows(ds)
	bm := newBM25(wins)

	texts := make([]string, len(wins))
	for i, w := range wins {
		texts[i] = w.Text
	}
	emb := embed.NewBuiltin(0)
	vecs, err := emb.Embed(context.Background(), texts)
	if err != nil {
		t.Fatal(err)
	}

	lexical := make(map[string][]Retrieved)
	vector := make(map[string][]Retrieved)
	hybrid := make(map[string][]Retrieved)
	for _, q := range ds.Questions {
		lex := bm.search(q.Question, 50)
		qv, err := emb.Embed(context.Background(), []string{q.Question})
		if err != nil {
			t.Fatal(err)
		}
		vec := nearest(vecs, qv[0], 50)
		lexical[q.ID] = pick(wins, lex, baselineN)
		vector[q.ID] = pick(wins, vec, baselineN)
		hybrid[q.ID] = pick(wins, fuse(lex, vec), baselineN)
	}

	rep := Report{K: baselineK}
	bmRow := rep.Add("bm25", ds.Questions, lexical)
	rep.Add("vector (builtin)", ds.Questions, vector)
	rep.Add("hybrid (RRF)", ds.Questions, hybrid)
	t.Logf("%d windows of %d words every %d words; %d results per question\n%s", len(wins), windowWords, windowStride, baselineN, rep.String())

	if r := bmRow.All.Recall; r < 0.2 || r > 0.98 {
		t.Errorf("BM25 recall@%d = %.3f, want between 0.2 and 0.98: the set is too hard or too easy", baselineK, r)
	}
}

// windows cuts every document into overlapping word windows with their byte
// offsets.
func windows(ds *Dataset) []Retrieved {
	var out []Retrieved
	for _, d := range ds.Documents {
		spans := wordSpans(d.Text)
		for i := 0; i < len(spans); i += windowStride {
			j := min(i+windowWords, len(spans))
			start, end := spans[i][0], spans[j-1][1]
			out = append(out, Retrieved{DocPath: d.Path, Start: start, End: end, Text: d.Text[start:end]})
			if j == len(spans) {
				break
			}
		}
	}
	return out
}

// wordSpans returns the byte ranges of the whitespace-separated words of s.
func wordSpans(s string) [][2]int {
	var spans [][2]int
	start := -1
	for i, r := range s {
		if unicode.IsSpace(r) {
			if start >= 0 {
				spans = append(spans, [2]int{start, i})
				start = -1
			}
		} else if start < 0 {
			start = i
		}
	}
	if start >= 0 {
		spans = append(spans, [2]int{start, len(s)})
	}
	return spans
}

// bm25 is a minimal Okapi BM25 index over the windows.
type bm25 struct {
	docs  []map[string]int // term frequencies per window
	lens  []int
	avg   float64
	df    map[string]int
	k1, b float64
}

var stopwords = map[string]bool{}

func init() {
	for _, w := range strings.Fields(`a an and are as at be by can do does for from how i if in is it its
		of on or so that the this to was what when where which who why will with you my me
		i'd i'm don't doesn't`) {
		stopwords[w] = true
	}
}

func terms(s string) []string {
	words := strings.FieldsFunc(strings.ToLower(s), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '_'
	})
	out := words[:0]
	for _, w := range words {
		if !stopwords[w] {
			out = append(out, w)
		}
	}
	return out
}

func newBM25(wins []Retrieved) *bm25 {
	ix := &bm25{df: make(map[string]int), k1: 1.2, b: 0.75}
	total := 0
	for _, w := range wins {
		tf := make(map[string]int)
		n := 0
		for _, term := range terms(w.Text) {
			tf[term]++
			n++
		}
		for term := range tf {
			ix.df[term]++
		}
		ix.docs = append(ix.docs, tf)
		ix.lens = append(ix.lens, n)
		total += n
	}
	ix.avg = float64(total) / float64(len(wins))
	return ix
}

// search returns the indexes of the best n windows, best first.
func (ix *bm25) search(query string, n int) []int {
	scores := make([]float64, len(ix.docs))
	seen := make(map[string]bool)
	for _, term := range terms(query) {
		if seen[term] {
			continue
		}
		seen[term] = true
		df := ix.df[term]
		if df == 0 {
			continue
		}
		idf := math.Log(1 + (float64(len(ix.docs))-float64(df)+0.5)/(float64(df)+0.5))
		for i, tf := range ix.docs {
			f := float64(tf[term])
			if f == 0 {
				continue
			}
			scores[i] += idf * f * (ix.k1 + 1) / (f + ix.k1*(1-ix.b+ix.b*float64(ix.lens[i])/ix.avg))
		}
	}
	return top(scores, n)
}

// nearest returns the indexes of the n vectors closest to q by cosine (the
// vectors are normalized), best first.
func nearest(vecs [][]float32, q []float32, n int) []int {
	scores := make([]float64, len(vecs))
	for i, v := range vecs {
		var dot float32
		for j := range v {
			dot += v[j] * q[j]
		}
		scores[i] = float64(dot)
	}
	return top(scores, n)
}

// fuse merges two rankings by reciprocal rank fusion (k = 60).
func fuse(a, b []int) []int {
	score := make(map[int]float64)
	for _, list := range [][]int{a, b} {
		for rank, i := range list {
			score[i] += 1 / float64(60+rank+1)
		}
	}
	ids := make([]int, 0, len(score))
	for i := range score {
		ids = append(ids, i)
	}
	sort.Slice(ids, func(x, y int) bool {
		if score[ids[x]] != score[ids[y]] {
			return score[ids[x]] > score[ids[y]]
		}
		return ids[x] < ids[y]
	})
	return ids
}

// top returns the indexes of the n highest positive scores, best first,
// ties by index.
func top(scores []float64, n int) []int {
	var ids []int
	for i, s := range scores {
		if s > 0 {
			ids = append(ids, i)
		}
	}
	sort.Slice(ids, func(x, y int) bool {
		if scores[ids[x]] != scores[ids[y]] {
			return scores[ids[x]] > scores[ids[y]]
		}
		return ids[x] < ids[y]
	})
	if len(ids) > n {
		ids = ids[:n]
	}
	return ids
}

func pick(wins []Retrieved, ids []int, n int) []Retrieved {
	out := make([]Retrieved, 0, n)
	for _, i := range ids {
		if len(out) == n {
			break
		}
		out = append(out, wins[i])
	}
	return out
}
