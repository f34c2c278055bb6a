package eval

import (
	"io/fs"
	"os"
	"strings"
	"testing"
)

// Size requirements of the shipped set (issue 14), and the budget of
// testdata/.
const (
	minQuestions = 100
	minChunks    = 500
	minPerKind   = 20
	maxTestdata  = 1536 << 10
)

func loadShipped(t *testing.T) *Dataset {
	t.Helper()
	ds, err := Load("testdata")
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

func TestShippedDataset(t *testing.T) {
	ds := loadShipped(t)
	words, chunks := ds.Words(), ds.EstimatedChunks()
	t.Logf("%d documents, %d words (~%d chunks of %d words), %d questions %v",
		len(ds.Documents), words, chunks, WordsPerChunk, len(ds.Questions), ds.CountByKind())
	if len(ds.Questions) < minQuestions {
		t.Errorf("%d questions, want >= %d", len(ds.Questions), minQuestions)
	}
	if chunks < minChunks {
		t.Errorf("%d words make ~%d chunks, want >= %d", words, chunks, minChunks)
	}
	for kind, n := range ds.CountByKind() {
		if n < minPerKind {
			t.Errorf("%d %s questions, want >= %d", n, kind, minPerKind)
		}
	}
	for _, kind := range Kinds {
		if ds.CountByKind()[kind] == 0 {
			t.Errorf("no %s questions", kind)
		}
	}
	// Load has checked that every passage occurs once; check the offsets.
	for _, q := range ds.Questions {
		for _, p := range q.Relevant {
			doc, _ := ds.Document(p.Doc)
			if doc.Text[p.Start:p.End] != p.Text {
				t.Errorf("%s: passage offsets [%d,%d) in %s are off", q.ID, p.Start, p.End, p.Doc)
			}
		}
	}
}

// Every corpus file must have its source and license in the README.
func TestShippedREADMEListsEveryFile(t *testing.T) {
	ds := loadShipped(t)
	readme, err := os.ReadFile("testdata/README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds.Documents {
		if !strings.Contains(string(readme), "`"+d.Path+"`") {
			t.Errorf("testdata/README.md does not list %s", d.Path)
		}
	}
}

func TestShippedSize(t *testing.T) {
	var total int64
	err := fs.WalkDir(os.DirFS("testdata"), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		total += info.Size()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("testdata: %d bytes", total)
	if total > maxTestdata {
		t.Errorf("testdata is %d bytes, over the budget of %d", total, maxTestdata)
	}
}
