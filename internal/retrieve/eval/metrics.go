package eval

import "math"

// The metrics take one question and its results, best first. A cutoff
// k <= 0 means the whole list. A question without relevant passages, which
// Load does not let through, scores 0.

// RecallAtK is the share of q's relevant passages covered by at least one of
// the first k results.
func RecallAtK(q Question, ranked []Retrieved, k int) float64 {
	if len(q.Relevant) == 0 {
		return 0
	}
	ranked = cut(ranked, k)
	found := 0
	for _, p := range q.Relevant {
		for _, r := range ranked {
			if Covers(p, r) {
				found++
				break
			}
		}
	}
	return float64(found) / float64(len(q.Relevant))
}

// MRR is the reciprocal rank of the first relevant result, 1/rank, or 0
// when none is relevant: the per-question term whose mean over questions is
// the mean reciprocal rank. It looks at the whole list, so compare runs of
// the same depth.
func MRR(q Question, ranked []Retrieved) float64 {
	if rank := FirstRelevant(q, ranked); rank > 0 {
		return 1 / float64(rank)
	}
	return 0
}

// FirstRelevant is the 1-based rank of the first result relevant to q, or 0.
func FirstRelevant(q Question, ranked []Retrieved) int {
	for i, r := range ranked {
		if Relevant(q, r) {
			return i + 1
		}
	}
	return 0
}

// NDCGAtK is the normalised discounted cumulative gain of the first k
// results with binary relevance, in [0, 1].
//
// The result at rank i gains 1 when it can be credited with a relevant
// passage of its own: results are credited in rank order with distinct
// passages they cover, and a result is credited if a matching of passages to
// it and to all better-ranked credited results exists (found by augmenting
// paths, so a chunk covering two passages does not block a later chunk that
// covers only one of them). A passage is thus credited once, however many
// overlapping chunks cover it. DCG is the sum of gain_i / log2(i+1); the
// ideal DCG credits the first min(k, R) ranks, R being the number of
// relevant passages.
func NDCGAtK(q Question, ranked []Retrieved, k int) float64 {
	if len(q.Relevant) == 0 {
		return 0
	}
	ranked = cut(ranked, k)
	owner := make([]int, len(q.Relevant)) // passage -> credited rank index, -1 if none
	for j := range owner {
		owner[j] = -1
	}
	var dcg float64
	for i := range ranked {
		seen := make([]bool, len(q.Relevant))
		if augment(q, ranked, i, owner, seen) {
			dcg += 1 / math.Log2(float64(i+2))
		}
	}
	ideal := len(q.Relevant)
	if k > 0 {
		ideal = min(ideal, k)
	}
	var idcg float64
	for i := range ideal {
		idcg += 1 / math.Log2(float64(i+2))
	}
	return dcg / idcg
}

// augment tries to credit result i with a passage, moving earlier credits
// along an augmenting path if needed (Kuhn's algorithm).
func augment(q Question, ranked []Retrieved, i int, owner []int, seen []bool) bool {
	for j, p := range q.Relevant {
		if seen[j] || !Covers(p, ranked[i]) {
			continue
		}
		seen[j] = true
		if owner[j] < 0 || augment(q, ranked, owner[j], owner, seen) {
			owner[j] = i
			return true
		}
	}
	return false
}

func cut(ranked []Retrieved, k int) []Retrieved {
	if k > 0 && k < len(ranked) {
		return ranked[:k]
	}
	return ranked
}
