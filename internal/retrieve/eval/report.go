package eval

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
)

// DefaultK is the cutoff of a Report whose K is zero.
const DefaultK = 5

// Scores are means over a set of questions.
type Scores struct {
	Questions int
	Recall    float64 // mean RecallAtK
	MRR       float64 // mean MRR
	NDCG      float64 // mean NDCGAtK
}

// QuestionScore is one question's scores in a run.
type QuestionScore struct {
	ID, Kind  string
	Recall    float64
	RR        float64 // reciprocal rank, MRR's term
	NDCG      float64
	FirstRank int // rank of the first relevant result, 0 if none
}

// Row is one run, e.g. one retrieval mode, over the questions.
type Row struct {
	Name string
	All  Scores
	// ByKind has the scores of each kind present.
	ByKind map[string]Scores
	// PerQuestion is in question order.
	PerQuestion []QuestionScore
}

// Report compares runs over the same questions. The zero value is ready to
// use with K = DefaultK.
type Report struct {
	// K is the cutoff of recall and nDCG. MRR looks at whole lists.
	K    int
	Rows []Row
}

func (rep *Report) k() int {
	if rep.K <= 0 {
		return DefaultK
	}
	return rep.K
}

// Add scores one run and appends it as a row. results maps a question ID to
// its results, best first; a question without an entry has no results and
// scores 0.
func (rep *Report) Add(name string, qs []Question, results map[string][]Retrieved) Row {
	k := rep.k()
	row := Row{Name: name, ByKind: make(map[string]Scores)}
	for _, q := range qs {
		ranked := results[q.ID]
		s := QuestionScore{
			ID:        q.ID,
			Kind:      q.Kind,
			Recall:    RecallAtK(q, ranked, k),
			RR:        MRR(q, ranked),
			NDCG:      NDCGAtK(q, ranked, k),
			FirstRank: FirstRelevant(q, ranked),
		}
		row.PerQuestion = append(row.PerQuestion, s)
		row.All = row.All.add(s)
		row.ByKind[q.Kind] = row.ByKind[q.Kind].add(s)
	}
	row.All = row.All.mean()
	for kind, s := range row.ByKind {
		row.ByKind[kind] = s.mean()
	}
	rep.Rows = append(rep.Rows, row)
	return row
}

// add accumulates sums; mean turns them into means.
func (s Scores) add(q QuestionScore) Scores {
	s.Questions++
	s.Recall += q.Recall
	s.MRR += q.RR
	s.NDCG += q.NDCG
	return s
}

func (s Scores) mean() Scores {
	if s.Questions == 0 {
		return s
	}
	n := float64(s.Questions)
	s.Recall /= n
	s.MRR /= n
	s.NDCG /= n
	return s
}

// WriteTable renders the report as two aligned text tables: the means of
// each run over all questions, then by question kind.
func (rep *Report) WriteTable(w io.Writer) error {
	k := rep.k()
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "run\tquestions\trecall@%d\tMRR\tnDCG@%d\n", k, k)
	for _, row := range rep.Rows {
		writeScores(tw, row.Name, row.All)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if _, err := io.WriteString(w, "\n"); err != nil {
		return err
	}
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "run\tkind\tquestions\trecall@%d\tMRR\tnDCG@%d\n", k, k)
	for _, row := range rep.Rows {
		for _, kind := range kindOrder(row.ByKind) {
			writeScores(tw, row.Name+"\t"+kind, row.ByKind[kind])
		}
	}
	return tw.Flush()
}

func writeScores(w io.Writer, label string, s Scores) {
	fmt.Fprintf(w, "%s\t%d\t%.3f\t%.3f\t%.3f\n", label, s.Questions, s.Recall, s.MRR, s.NDCG)
}

// kindOrder is Kinds first, then any other kinds present, sorted.
func kindOrder(m map[string]Scores) []string {
	var out, other []string
	for _, k := range Kinds {
		if _, ok := m[k]; ok {
			out = append(out, k)
		}
	}
	for k := range m {
		if !slices.Contains(Kinds, k) {
			other = append(other, k)
		}
	}
	slices.Sort(other)
	return append(out, other...)
}

// String is the rendered table.
func (rep *Report) String() string {
	var b strings.Builder
	rep.WriteTable(&b) // a strings.Builder does not fail
	return b.String()
}
