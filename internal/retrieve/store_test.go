package retrieve

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"switchyard/internal/embed"
)

func TestDirStoreRoundTrip(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	c := newColl(t, Options{Store: st, Chunking: ChunkOptions{MaxTokens: 32}})
	for i := range 30 {
		mustAdd(t, c, Document{
			ID: fmt.Sprintf("doc/%d", i), Title: fmt.Sprintf("Doc %d", i), URL: "http://x/" + fmt.Sprint(i),
			Format: Markdown, Content: []byte(fmt.Sprintf("# H%d\n\n%s\n\n## Sub\n\n%s", i, words(i, 40), words(i*3, 20))),
			Metadata: map[string]any{"i": i, "even": i%2 == 0}, ACL: ACL{Groups: []string{fmt.Sprintf("g%d", i%3)}},
		})
	}
	mustAdd(t, c, Document{ID: "records", Format: JSONL, Content: []byte(`{"text":"w5 record one","id":"r1","metadata":{"lang":"en"}}` + "\n" + `{"text":"w6 record two","title":"Two"}`)})
	mustAdd(t, c, Document{ID: "doc/3", Content: []byte("replaced w3 w4 w5")})
	if _, err := c.Delete(ctx, "doc/4"); err != nil {
		t.Fatal(err)
	}
	queries := []Query{}
	for _, m := range []Mode{ModeHybrid, ModeVector, ModeKeyword} {
		for _, g := range []string{"g0", "g1", "g2"} {
			queries = append(queries,
				Query{Text: "w5 w12 record", Mode: m, TopK: 20, Principal: Principal{Groups: []string{g}}},
				Query{Text: "w7 w30", Mode: m, Filter: &Filter{Type: Eq, Key: "even", Value: true}, Principal: Principal{Groups: []string{g}}})
		}
	}
	var before [][]Hit
	for _, q := range queries {
		before = append(before, search(t, c, q))
	}
	st2, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	// A leftover temporary file (a Put interrupted by a crash) is ignored.
	if err := os.WriteFile(filepath.Join(dir, "docs", tmpPrefix+"123"), []byte("SYRD partial"), 0o644); err != nil {
		t.Fatal(err)
	}
	c2 := newColl(t, Options{Store: st2, Chunking: ChunkOptions{MaxTokens: 32}})
	if s1, s2 := c.Stats(), c2.Stats(); s1 != s2 {
		t.Errorf("stats %+v after reopening, %+v before", s2, s1)
	}
	for i, q := range queries {
		if got := search(t, c2, q); !reflect.DeepEqual(got, before[i]) {
			t.Errorf("query %d after reopening:\n got %s\nwant %s", i, hitsDump(got), hitsDump(before[i]))
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "docs", tmpPrefix+"123")); !os.IsNotExist(err) {
		t.Errorf("temporary file not removed: %v", err)
	}
	// Another embedder is refused.
	if _, err := New(ctx, Options{Embedder: embed.NewBuiltin(32), Store: st2}); err == nil || !strings.Contains(err.Error(), "64-d") {
		t.Errorf("another dimension: %v", err)
	}
}

// TestDirStoreTorn: a document file cut short, with a flipped byte, or
// renamed is refused with its name, not loaded as part of an index.
func TestDirStoreTorn(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, _ := OpenDir(dir)
	c := newColl(t, Options{Store: st})
	mustAdd(t, c, Document{ID: "a", Content: []byte("alpha text")})
	mustAdd(t, c, Document{ID: "b", Content: []byte("beta text")})
	file := st.path("b")
	good, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	flip := append([]byte(nil), good...)
	flip[len(flip)/2] ^= 0x40
	for _, tc := range []struct {
		name string
		data []byte
		msg  string
	}{
		{"truncated", good[:len(good)-7], "checksum"},
		{"short", good[:10], "truncated or corrupt document file: 10 bytes"},
		{"flipped byte", flip, "checksum"},
		{"bad magic", append([]byte("XXXX"), good[4:]...), "bad magic"},
		{"empty", nil, "0 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(file, tc.data, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := New(ctx, Options{Embedder: embed.NewBuiltin(64), Store: st})
			if err == nil || !strings.Contains(err.Error(), tc.msg) || !strings.Contains(err.Error(), filepath.Base(file)) {
				t.Errorf("error %v, want %q naming %s", err, tc.msg, filepath.Base(file))
			}
		})
	}
	// A file under another document's name.
	os.WriteFile(file, good, 0o644)
	if err := os.Rename(file, st.path("c")); err != nil {
		t.Fatal(err)
	}
	if _, err := New(ctx, Options{Embedder: embed.NewBuiltin(64), Store: st}); err == nil || !strings.Contains(err.Error(), `holds document "b"`) {
		t.Errorf("renamed file: %v", err)
	}
}
