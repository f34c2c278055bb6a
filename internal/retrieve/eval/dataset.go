package eval

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"unicode/utf8"
)

// Question kinds.
const (
	// KindLexical questions share rare words with their passage, so
	// keyword search should find them.
	KindLexical = "lexical"
	// KindParaphrase questions say the same thing in other words; few
	// content words are shared with the passage.
	KindParaphrase = "paraphrase"
	// KindMulti questions need passages from at least two documents.
	KindMulti = "multi"
)

// Kinds lists the question kinds in the order reports show them.
var Kinds = []string{KindLexical, KindParaphrase, KindMulti}

// Bounds on the length of a passage, in whitespace-separated words.
const (
	MinPassageWords = 5
	MaxPassageWords = 40
)

// WordsPerChunk is the chunk size, in words, by which EstimatedChunks
// converts the corpus size into a number of chunks.
const WordsPerChunk = 200

// The layout of a dataset directory.
const (
	CorpusDir     = "corpus"
	QuestionsFile = "questions.jsonl"
)

// maxReported bounds the problems one Load error lists.
const maxReported = 20

// Document is one corpus file.
type Document struct {
	// Path is the file's path relative to the corpus directory, with
	// forward slashes, e.g. "spec/07-types/10-map-types.md".
	Path string
	// Text is the file's content, byte for byte.
	Text string
}

// Passage is a span of a document that answers a question.
type Passage struct {
	// Doc is the Path of the document.
	Doc string `json:"doc"`
	// Text occurs exactly once in the document.
	Text string `json:"passage"`
	// Start and End are the byte offsets of Text in the document, set by
	// Load: Text == doc.Text[Start:End].
	Start int `json:"-"`
	End   int `json:"-"`
}

// Question is one labelled query.
type Question struct {
	ID       string    `json:"id"`
	Question string    `json:"question"`
	Relevant []Passage `json:"relevant"`
	// Kind is one of KindLexical, KindParaphrase and KindMulti.
	Kind string `json:"kind"`
}

// Dataset is a corpus with questions over it. Nothing modifies it after
// Load, so it is safe for concurrent use.
type Dataset struct {
	// Documents are sorted by Path.
	Documents []Document
	// Questions are in file order.
	Questions []Question

	byPath map[string]int
	// noCorpus: the questions of ParseQuestions, whose passages are
	// checked for shape only.
	noCorpus bool
}

// ParseQuestions reads questions in the questions.jsonl format without a
// corpus, for judging results by their text (Retrieved without offsets):
// every check of Load but those against the documents.
func ParseQuestions(data []byte) ([]Question, error) {
	ds := &Dataset{noCorpus: true}
	if err := ds.readQuestions(data); err != nil {
		return nil, err
	}
	return ds.Questions, nil
}

// Load reads the dataset in dir: every regular file under dir/corpus
// (hidden files and directories skipped) and dir/questions.jsonl. See the
// package documentation for the format. Load checks every question and
// fails, listing the problems with their line numbers, if any passage is not
// found exactly once in its document.
func Load(dir string) (*Dataset, error) {
	ds, err := LoadFS(os.DirFS(dir))
	if err != nil {
		return nil, fmt.Errorf("loading dataset %s: %w", dir, err)
	}
	return ds, nil
}

// LoadFS is Load on a file system whose root is the dataset directory.
func LoadFS(fsys fs.FS) (*Dataset, error) {
	ds := &Dataset{byPath: make(map[string]int)}
	if err := ds.readCorpus(fsys); err != nil {
		return nil, err
	}
	data, err := fs.ReadFile(fsys, QuestionsFile)
	if err != nil {
		return nil, fmt.Errorf("reading questions: %w", err)
	}
	if err := ds.readQuestions(data); err != nil {
		return nil, err
	}
	return ds, nil
}

func (ds *Dataset) readCorpus(fsys fs.FS) error {
	err := fs.WalkDir(fsys, CorpusDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != CorpusDir && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		rel := strings.TrimPrefix(p, CorpusDir+"/")
		if !utf8.Valid(b) {
			return fmt.Errorf("corpus file %s: not valid UTF-8", rel)
		}
		if len(bytes.TrimSpace(b)) == 0 {
			return fmt.Errorf("corpus file %s: empty", rel)
		}
		ds.Documents = append(ds.Documents, Document{Path: rel, Text: string(b)})
		return nil
	})
	if err != nil {
		return fmt.Errorf("reading corpus: %w", err)
	}
	if len(ds.Documents) == 0 {
		return fmt.Errorf("reading corpus: no files under %s/", CorpusDir)
	}
	sort.Slice(ds.Documents, func(i, j int) bool { return ds.Documents[i].Path < ds.Documents[j].Path })
	for i, d := range ds.Documents {
		ds.byPath[d.Path] = i
	}
	return nil
}

func (ds *Dataset) readQuestions(data []byte) error {
	var errs []error
	report := func(line int, id, format string, args ...any) {
		if id != "" {
			format = id + ": " + format
		}
		errs = append(errs, fmt.Errorf("%s:%d: "+format, append([]any{QuestionsFile, line}, args...)...))
	}
	seen := make(map[string]int)
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for line := 1; sc.Scan(); line++ {
		text := bytes.TrimSpace(sc.Bytes())
		if len(text) == 0 {
			continue
		}
		var q Question
		dec := json.NewDecoder(bytes.NewReader(text))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&q); err != nil {
			report(line, "", "%v", err)
			continue
		}
		if dec.More() {
			report(line, q.ID, "more than one JSON value on the line")
			continue
		}
		n := len(errs)
		ds.checkQuestion(&q, func(format string, args ...any) { report(line, q.ID, format, args...) })
		if prev, ok := seen[q.ID]; ok && q.ID != "" {
			report(line, q.ID, "duplicate id (first on line %d)", prev)
		}
		seen[q.ID] = line
		if len(errs) == n {
			ds.Questions = append(ds.Questions, q)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading questions: %w", err)
	}
	if len(errs) == 0 && len(ds.Questions) == 0 {
		return fmt.Errorf("%s: no questions", QuestionsFile)
	}
	if len(errs) > maxReported {
		errs = append(errs[:maxReported], fmt.Errorf("and %d more problems", len(errs)-maxReported))
	}
	return errors.Join(errs...)
}

// checkQuestion validates q and sets the offsets of its passages.
func (ds *Dataset) checkQuestion(q *Question, bad func(format string, args ...any)) {
	if q.ID == "" {
		bad("missing id")
	}
	if strings.TrimSpace(q.Question) == "" {
		bad("empty question")
	}
	switch q.Kind {
	case KindLexical, KindParaphrase, KindMulti:
	default:
		bad("kind %q is not one of %s", q.Kind, strings.Join(Kinds, ", "))
	}
	if len(q.Relevant) == 0 {
		bad("no relevant passages")
	}
	docs := make(map[string]bool)
	for i := range q.Relevant {
		p := &q.Relevant[i]
		docs[p.Doc] = true
		for _, prev := range q.Relevant[:i] {
			if prev.Doc == p.Doc && prev.Text == p.Text {
				bad("relevant[%d] repeats an earlier passage", i)
			}
		}
		if n := len(strings.Fields(p.Text)); n < MinPassageWords || n > MaxPassageWords {
			bad("relevant[%d]: passage has %d words, want %d to %d", i, n, MinPassageWords, MaxPassageWords)
		}
		if ds.noCorpus {
			if p.Doc == "" {
				bad("relevant[%d]: no doc", i)
			}
			continue
		}
		doc, ok := ds.Document(p.Doc)
		if !ok {
			bad("relevant[%d]: no document %q in the corpus", i, p.Doc)
			continue
		}
		if p.Text == "" {
			continue
		}
		start := strings.Index(doc.Text, p.Text)
		switch {
		case start < 0:
			bad("relevant[%d]: passage not found in %s%s", i, p.Doc, nearMiss(doc.Text, p.Text))
			continue
		case strings.Contains(doc.Text[start+1:], p.Text):
			bad("relevant[%d]: passage occurs more than once in %s; lengthen it", i, p.Doc)
			continue
		}
		p.Start, p.End = start, start+len(p.Text)
	}
	if q.Kind == KindMulti && len(docs) < 2 {
		bad("kind multi needs passages from at least two documents, got %d", len(docs))
	}
}

// nearMiss explains how much of a passage that was not found does occur, to
// help whoever edits the questions.
func nearMiss(doc, passage string) string {
	if norm := strings.Join(strings.Fields(passage), " "); strings.Contains(strings.Join(strings.Fields(doc), " "), norm) {
		return " (it differs from the document in whitespace only)"
	}
	words := strings.Fields(passage)
	n := 0
	for n < len(words) && strings.Contains(doc, strings.Join(words[:n+1], " ")) {
		n++
	}
	if n == 0 {
		return " (not even its first word)"
	}
	return fmt.Sprintf(" (its first %d of %d words are, up to %q)", n, len(words), strings.Join(words[:n], " "))
}

// Document returns the document with the given path.
func (ds *Dataset) Document(p string) (Document, bool) {
	i, ok := ds.byPath[p]
	if !ok {
		return Document{}, false
	}
	return ds.Documents[i], true
}

// Words is the number of whitespace-separated words in the corpus.
func (ds *Dataset) Words() int {
	n := 0
	for _, d := range ds.Documents {
		n += len(strings.Fields(d.Text))
	}
	return n
}

// EstimatedChunks is Words() / WordsPerChunk.
func (ds *Dataset) EstimatedChunks() int { return ds.Words() / WordsPerChunk }

// CountByKind returns the number of questions of each kind.
func (ds *Dataset) CountByKind() map[string]int {
	m := make(map[string]int)
	for _, q := range ds.Questions {
		m[q.Kind]++
	}
	return m
}

// Resolve checks r against the corpus and fills in what it can: DocPath is
// cleaned to the corpus form; a result with Text but no offsets gets the
// offsets of the first exact occurrence of Text in the document, if there is
// one (otherwise Relevant falls back on comparing words). It fails when the
// document is unknown or the offsets are outside it.
func (ds *Dataset) Resolve(r Retrieved) (Retrieved, error) {
	r.DocPath = cleanPath(r.DocPath)
	doc, ok := ds.Document(r.DocPath)
	if !ok {
		return r, fmt.Errorf("result in %q: no such document in the corpus", r.DocPath)
	}
	if r.hasOffsets() {
		if r.Start < 0 || r.End > len(doc.Text) {
			return r, fmt.Errorf("result in %s: offsets [%d, %d) outside the document's %d bytes", r.DocPath, r.Start, r.End, len(doc.Text))
		}
		return r, nil
	}
	if r.Start != 0 || r.End != 0 {
		return r, fmt.Errorf("result in %s: empty or inverted offsets [%d, %d)", r.DocPath, r.Start, r.End)
	}
	if r.Text != "" {
		if i := strings.Index(doc.Text, r.Text); i >= 0 {
			r.Start, r.End = i, i+len(r.Text)
		}
	}
	return r, nil
}

// cleanPath puts a document path in the corpus form: forward slashes, no
// leading "./" or "/", no "corpus/" prefix.
func cleanPath(p string) string {
	p = strings.ReplaceAll(p, "\\", "/")
	p = strings.TrimPrefix(path.Clean("/"+p), "/")
	return strings.TrimPrefix(p, CorpusDir+"/")
}
