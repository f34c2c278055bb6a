// Package eval is a labelled retrieval evaluation set and the metrics over
// it: recall@k, mean reciprocal rank and nDCG@k, per retrieval mode (issue
// 14). It does not retrieve anything itself; a caller indexes the corpus,
// runs each question through a retriever and hands the ranked results to a
// Report.
//
// # Dataset format
//
// A dataset is a directory (testdata/ here; see testdata/README.md for the
// sources and licenses of the shipped one) with
//
//	corpus/           the documents: every regular file below it, hidden
//	                  files and directories skipped, UTF-8; a document is
//	                  named by its path relative to corpus/ with forward
//	                  slashes, e.g. "spec/07-types/10-map-types.md"
//	questions.jsonl   one question per line
//
// A question line is
//
//	{"id": "q001", "question": "...", "kind": "lexical",
//	 "relevant": [{"doc": "memory-model.md", "passage": "..."}]}
//
// id is unique; kind is "lexical" (the question shares rare words with its
// passage), "paraphrase" (it says the same in other words) or "multi" (the
// answer needs passages from at least two documents); each passage has
// MinPassageWords to MaxPassageWords words and occurs exactly once, byte for
// byte, in its document. Load checks all of this and fails with the line
// numbers of every bad question, saying how much of a passage that was not
// found does occur.
//
// # Relevance
//
// Relevance is defined by passages, not by chunk identifiers, so that the
// set survives any chunker. A result (Retrieved) covers a passage when both
// are in the same document and the result's byte range [Start, End) overlaps
// the passage's by at least half of the passage's length; a result that
// only has text (Start == End == 0) covers it when its text contains a run
// of at least half of the passage's words, adjacent and in order (see
// Covers). A result is relevant to a question when it covers one of the
// question's passages.
//
// # Metrics
//
// For one question and its results, best first:
//
//   - RecallAtK: the share of the question's passages covered by at least
//     one of the first k results.
//   - MRR: 1/rank of the first relevant result, 0 if none; its mean over
//     questions is the mean reciprocal rank.
//   - NDCGAtK: binary gains, each passage credited to at most one result,
//     the ideal DCG having min(k, number of passages) gains at the top.
//
// Report averages them over all questions and by kind, per run, and renders
// a text table.
//
// # Adding questions
//
// Append a line to questions.jsonl with the next free id. Copy the passage
// from the document itself (in the Markdown files of the shipped corpus a
// paragraph is one line, so a sentence can be copied whole); keep it to the
// sentence or two that answers the question, long enough to be unique in
// its document. For a paraphrase question, word it the way a user who has
// not read the document would, avoiding the passage's rare words. Then run
// go test ./internal/retrieve/eval/: TestShippedDataset loads the set and
// TestBM25Baseline logs how a plain keyword search does on it.
package eval
