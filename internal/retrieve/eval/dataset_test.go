package eval

import (
	"strings"
	"testing"
	"testing/fstest"
)

const (
	docA = "# A\n\nThe quick brown fox jumps over the lazy dog. It was a sunny day.\n"
	docB = "# B\n\nPackets are routed by the gateway to the nearest healthy backend.\n"
)

func testFS(questions string) fstest.MapFS {
	return fstest.MapFS{
		"corpus/a.md":        {Data: []byte(docA)},
		"corpus/sub/b.md":    {Data: []byte(docB)},
		"corpus/.hidden":     {Data: []byte("skipped")},
		"corpus/.git/config": {Data: []byte("skipped")},
		"questions.jsonl":    {Data: []byte(questions)},
	}
}

func TestLoadFS(t *testing.T) {
	qs := `{"id": "q1", "question": "What jumps?", "kind": "lexical", "relevant": [{"doc": "a.md", "passage": "The quick brown fox jumps"}]}

{"id": "q2", "question": "Where do packets go, and what jumps?", "kind": "multi", "relevant": [{"doc": "sub/b.md", "passage": "routed by the gateway to the nearest healthy backend"}, {"doc": "a.md", "passage": "fox jumps over the lazy dog."}]}
`
	ds, err := LoadFS(testFS(qs))
	if err != nil {
		t.Fatal(err)
	}
	if len(ds.Documents) != 2 || ds.Documents[0].Path != "a.md" || ds.Documents[1].Path != "sub/b.md" {
		t.Fatalf("documents = %+v, want a.md and sub/b.md", ds.Documents)
	}
	if len(ds.Questions) != 2 {
		t.Fatalf("%d questions, want 2", len(ds.Questions))
	}
	for _, q := range ds.Questions {
		for _, p := range q.Relevant {
			doc, _ := ds.Document(p.Doc)
			if doc.Text[p.Start:p.End] != p.Text {
				t.Errorf("%s: offsets [%d,%d) give %q, want %q", q.ID, p.Start, p.End, doc.Text[p.Start:p.End], p.Text)
			}
		}
	}
	if got := ds.Words(); got != 29 {
		t.Errorf("Words() = %d, want 29", got)
	}
	if got := ds.CountByKind(); got[KindLexical] != 1 || got[KindMulti] != 1 {
		t.Errorf("CountByKind() = %v", got)
	}
}

func TestLoadFSErrors(t *testing.T) {
	const ok = `{"id": "q1", "question": "What jumps?", "kind": "lexical", "relevant": [{"doc": "a.md", "passage": "The quick brown fox jumps"}]}`
	tests := []struct {
		name string
		line string
		want []string // substrings of the error
	}{
		{"not found", `{"id": "q2", "question": "?", "kind": "lexical", "relevant": [{"doc": "a.md", "passage": "The quick brown cat jumps"}]}`,
			[]string{"questions.jsonl:2: q2: relevant[0]: passage not found in a.md", `first 3 of 5 words are, up to "The quick brown"`}},
		{"whitespace", `{"id": "q2", "question": "?", "kind": "lexical", "relevant": [{"doc": "a.md", "passage": "The quick  brown fox jumps"}]}`,
			[]string{"differs from the document in whitespace only"}},
		{"not unique", `{"id": "q2", "question": "?", "kind": "lexical", "relevant": [{"doc": "a.md", "passage": "o"}]}`,
			[]string{"occurs more than once in a.md", "passage has 1 words, want 5 to 40"}},
		{"too long", `{"id": "q2", "question": "?", "kind": "lexical", "relevant": [{"doc": "a.md", "passage": "` + strings.Repeat("w ", 41) + `"}]}`,
			[]string{"passage has 41 words"}},
		{"unknown doc", `{"id": "q2", "question": "?", "kind": "lexical", "relevant": [{"doc": "c.md", "passage": "The quick brown fox jumps"}]}`,
			[]string{`no document "c.md" in the corpus`}},
		{"duplicate id", strings.Replace(ok, "What", "Which", 1),
			[]string{"q1: duplicate id (first on line 1)"}},
		{"bad kind", `{"id": "q2", "question": "?", "kind": "semantic", "relevant": [{"doc": "a.md", "passage": "The quick brown fox jumps"}]}`,
			[]string{`kind "semantic" is not one of lexical, paraphrase, multi`}},
		{"multi in one document", `{"id": "q2", "question": "?", "kind": "multi", "relevant": [{"doc": "a.md", "passage": "The quick brown fox jumps"}, {"doc": "a.md", "passage": "It was a sunny day."}]}`,
			[]string{"kind multi needs passages from at least two documents, got 1"}},
		{"repeated passage", `{"id": "q2", "question": "?", "kind": "lexical", "relevant": [{"doc": "a.md", "passage": "The quick brown fox jumps"}, {"doc": "a.md", "passage": "The quick brown fox jumps"}]}`,
			[]string{"relevant[1] repeats an earlier passage"}},
		{"no passages", `{"id": "q2", "question": "?", "kind": "lexical", "relevant": []}`,
			[]string{"q2: no relevant passages"}},
		{"missing fields", `{"relevant": [{"doc": "a.md", "passage": "The quick brown fox jumps"}]}`,
			[]string{"questions.jsonl:2: missing id", "empty question"}},
		{"unknown field", `{"id": "q2", "question": "?", "kind": "lexical", "answer": "x", "relevant": [{"doc": "a.md", "passage": "The quick brown fox jumps"}]}`,
			[]string{`questions.jsonl:2: json: unknown field "answer"`}},
		{"bad json", `{"id": "q2",`, []string{"questions.jsonl:2: unexpected EOF"}},
		{"two values", ok + " {}", []string{"more than one JSON value"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadFS(testFS(ok + "\n" + tc.line + "\n"))
			if err == nil {
				t.Fatalf("LoadFS succeeded, want an error with %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
		})
	}
}

func TestLoadFSLayoutErrors(t *testing.T) {
	tests := []struct {
		name string
		fsys fstest.MapFS
		want string
	}{
		{"no questions file", fstest.MapFS{"corpus/a.md": {Data: []byte(docA)}}, "reading questions"},
		{"no questions", testFS("\n\n"), "questions.jsonl: no questions"},
		{"no corpus", fstest.MapFS{"questions.jsonl": {Data: []byte("")}}, "reading corpus"},
		{"empty corpus", fstest.MapFS{"corpus/.keep": {}, "questions.jsonl": {}}, "no files under corpus/"},
		{"empty document", fstest.MapFS{"corpus/a.md": {Data: []byte(" \n")}, "questions.jsonl": {}}, "corpus file a.md: empty"},
		{"not UTF-8", fstest.MapFS{"corpus/a.md": {Data: []byte("a\xffb")}, "questions.jsonl": {}}, "corpus file a.md: not valid UTF-8"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadFS(tc.fsys)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("LoadFS error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestLoadCapsReportedProblems(t *testing.T) {
	var b strings.Builder
	for i := range 30 {
		b.WriteString(`{"id": "q` + strings.Repeat("x", i+1) + `", "question": "?", "kind": "lexical", "relevant": [{"doc": "a.md", "passage": "not in the document at all"}]}` + "\n")
	}
	_, err := LoadFS(testFS(b.String()))
	if err == nil {
		t.Fatal("LoadFS succeeded")
	}
	if n := strings.Count(err.Error(), "passage not found"); n != maxReported {
		t.Errorf("%d problems listed, want %d", n, maxReported)
	}
	if !strings.Contains(err.Error(), "and 10 more problems") {
		t.Errorf("error does not count the rest: %v", err)
	}
}

func TestResolve(t *testing.T) {
	ds, err := LoadFS(testFS(`{"id": "q1", "question": "What jumps?", "kind": "lexical", "relevant": [{"doc": "a.md", "passage": "The quick brown fox jumps"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	start := strings.Index(docA, "brown fox")
	tests := []struct {
		name    string
		in      Retrieved
		want    Retrieved
		wantErr string
	}{
		{"offsets kept", Retrieved{DocPath: "a.md", Start: 3, End: 9}, Retrieved{DocPath: "a.md", Start: 3, End: 9}, ""},
		{"located by text", Retrieved{DocPath: "corpus/a.md", Text: "brown fox"}, Retrieved{DocPath: "a.md", Start: start, End: start + 9, Text: "brown fox"}, ""},
		{"text not in document", Retrieved{DocPath: "./a.md", Text: "brown  fox"}, Retrieved{DocPath: "a.md", Text: "brown  fox"}, ""},
		{"unknown document", Retrieved{DocPath: "c.md", Start: 0, End: 3}, Retrieved{}, `result in "c.md": no such document`},
		{"past the end", Retrieved{DocPath: "a.md", Start: 0, End: len(docA) + 1}, Retrieved{}, "outside the document's"},
		{"inverted", Retrieved{DocPath: "a.md", Start: 9, End: 3}, Retrieved{}, "empty or inverted offsets [9, 3)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ds.Resolve(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("Resolve(%+v) error = %v, want %q", tc.in, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("Resolve(%+v) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestParseQuestions(t *testing.T) {
	good := `{"id":"a","question":"how are requests routed?","kind":"lexical","relevant":[{"doc":"docs/routing.md","passage":"Routes are tried in order; the first that matches runs its chain"}]}`
	qs, err := ParseQuestions([]byte(good + "\n\n"))
	if err != nil || len(qs) != 1 || qs[0].Relevant[0].Doc != "docs/routing.md" {
		t.Fatalf("ParseQuestions = %+v, %v", qs, err)
	}
	for name, in := range map[string]string{
		"empty":      "",
		"no doc":     `{"id":"a","question":"q","kind":"lexical","relevant":[{"doc":"","passage":"one two three four five six seven eight"}]}`,
		"bad kind":   `{"id":"a","question":"q","kind":"odd","relevant":[{"doc":"d","passage":"one two three four five six seven eight"}]}`,
		"unknown":    `{"id":"a","question":"q","kind":"lexical","relevant":[],"extra":1}`,
		"duplicates": good + "\n" + good,
	} {
		if _, err := ParseQuestions([]byte(in)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
