package retrieve_test

import (
	"context"
	"testing"

	"switchyard/internal/embed"
	"switchyard/internal/retrieve"
	"switchyard/internal/retrieve/eval"
)

// TestRetrievalQuality runs the collection's three modes over the labelled
// set (internal/retrieve/eval/testdata: Go's documentation, 132 questions)
// with the builtin embedder, and logs recall@5, MRR and nDCG@5. Hybrid must
// beat vector-only, as the issue asks.
func TestRetrievalQuality(t *testing.T) {
	if testing.Short() {
		t.Skip("ingests the whole evaluation corpus")
	}
	ds, err := eval.Load("eval/testdata")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c, err := retrieve.New(ctx, retrieve.Options{Embedder: embed.NewBuiltin(512)})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds.Documents {
		if _, err := c.Add(ctx, retrieve.Document{ID: d.Path, Format: retrieve.Markdown, Content: []byte(d.Text)}); err != nil {
			t.Fatalf("adding %s: %v", d.Path, err)
		}
	}
	t.Logf("%d documents, %+v", len(ds.Documents), c.Stats())
	rep := eval.Report{K: 5}
	recall := map[retrieve.Mode]float64{}
	for _, mode := range []retrieve.Mode{retrieve.ModeHybrid, retrieve.ModeVector, retrieve.ModeKeyword} {
		results := map[string][]eval.Retrieved{}
		for _, q := range ds.Questions {
			hits, err := c.Search(ctx, retrieve.Query{Text: q.Question, Mode: mode, TopK: 10})
			if err != nil {
				t.Fatal(err)
			}
			for _, h := range hits {
				results[q.ID] = append(results[q.ID], eval.Retrieved{DocPath: h.DocID, Start: h.Start, End: h.End, Text: h.Text})
			}
		}
		row := rep.Add(string(mode), ds.Questions, results)
		recall[mode] = row.All.Recall
	}
	t.Logf("\n%s", rep.String())
	if recall[retrieve.ModeHybrid] <= recall[retrieve.ModeVector] {
		t.Errorf("hybrid recall@5 %.3f does not beat vector-only %.3f", recall[retrieve.ModeHybrid], recall[retrieve.ModeVector])
	}
}
