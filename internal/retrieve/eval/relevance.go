package eval

import "strings"

// Retrieved is one result of a retriever, e.g. a chunk.
type Retrieved struct {
	// DocPath is the path of the chunk's document relative to the corpus
	// directory, as in Document.Path.
	DocPath string
	// Start and End are the byte offsets of the chunk in the document.
	// Leave both zero when they are unknown; then Relevant compares Text.
	Start, End int
	// Text is the chunk's text.
	Text string
}

func (r Retrieved) hasOffsets() bool { return r.End > r.Start }

// Relevant reports whether r covers at least one of q's relevant passages
// (see Covers).
func Relevant(q Question, r Retrieved) bool {
	for _, p := range q.Relevant {
		if Covers(p, r) {
			return true
		}
	}
	return false
}

// Covers reports whether the result r covers at least half of the passage p.
//
// With offsets (r.End > r.Start), r covers p when both are in the same
// document and the byte ranges [r.Start, r.End) and [p.Start, p.End) share
// at least half of the passage's bytes: 2*overlap >= p.End-p.Start.
//
// Without offsets, r covers p when both are in the same document and r.Text
// contains a run of at least half of the passage's words (rounded up), in
// order and adjacent; words are split on white space and compared exactly,
// so a chunker that reflows white space is not penalised, one that rewrites
// words is.
func Covers(p Passage, r Retrieved) bool {
	if cleanPath(r.DocPath) != p.Doc {
		return false
	}
	if r.hasOffsets() {
		overlap := min(r.End, p.End) - max(r.Start, p.Start)
		return overlap > 0 && 2*overlap >= p.End-p.Start
	}
	pw := strings.Fields(p.Text)
	if len(pw) == 0 {
		return false
	}
	return 2*longestRun(pw, strings.Fields(r.Text)) >= len(pw)
}

// longestRun is the length of the longest run of consecutive words of p
// that also occurs consecutively in t.
func longestRun(p, t []string) int {
	// Dynamic programming over p with one row: run[j] is the length of the
	// common run ending at p[j-1] and the current word of t.
	run := make([]int, len(p)+1)
	best := 0
	for _, w := range t {
		for j := len(p); j >= 1; j-- {
			if p[j-1] == w {
				run[j] = run[j-1] + 1
				best = max(best, run[j])
			} else {
				run[j] = 0
			}
		}
	}
	return best
}
