package stages_test

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// regions returns the doc regions of this package's Go files: the lines
// between "// doc:begin NAME" and "// doc:end NAME", without leading and
// trailing blank lines, by name.
func regions(t *testing.T) map[string]string {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var name string
		var body []string
		sc := bufio.NewScanner(bytes.NewReader(src))
		for n := 1; sc.Scan(); n++ {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "// doc:begin "):
				if name != "" {
					t.Fatalf("%s:%d: doc:begin inside region %q", f, n, name)
				}
				name, body = strings.TrimPrefix(line, "// doc:begin "), nil
				if _, dup := out[name]; dup {
					t.Fatalf("%s:%d: region %q defined twice", f, n, name)
				}
			case strings.HasPrefix(line, "// doc:end "):
				if end := strings.TrimPrefix(line, "// doc:end "); end != name {
					t.Fatalf("%s:%d: doc:end %q closes region %q", f, n, end, name)
				}
				for len(body) > 0 && strings.TrimSpace(body[0]) == "" {
					body = body[1:]
				}
				for len(body) > 0 && strings.TrimSpace(body[len(body)-1]) == "" {
					body = body[:len(body)-1]
				}
				out[name] = strings.Join(body, "\n") + "\n"
				name = ""
			case name != "":
				body = append(body, line)
			}
		}
		if name != "" {
			t.Fatalf("%s: region %q is never closed", f, name)
		}
	}
	return out
}

// goBlocks returns the ```go blocks of a Markdown file.
func goBlocks(doc string) []string {
	var out []string
	var cur *strings.Builder
	for _, line := range strings.SplitAfter(doc, "\n") {
		trim := strings.TrimSpace(line)
		switch {
		case cur == nil && trim == "```go":
			cur = &strings.Builder{}
		case cur != nil && trim == "```":
			out = append(out, cur.String())
			cur = nil
		case cur != nil:
			cur.WriteString(line)
		}
	}
	return out
}

// TestDocShowsTheCode checks that docs/stages.md shows every example
// region of this package verbatim, each as a ```go block of its own, and
// that every ```go block there is one of them: the code in the doc is the
// code these tests run.
func TestDocShowsTheCode(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "stages.md"))
	if err != nil {
		t.Fatal(err)
	}
	regs := regions(t)
	for _, want := range []string{"register", "memo", "notice", "guard", "refine", "gate", "quota", "judge"} {
		if _, ok := regs[want]; !ok {
			t.Errorf("no doc region %q in the example files", want)
		}
	}
	shown := map[string]bool{}
	for _, b := range goBlocks(string(doc)) {
		found := false
		for name, r := range regs {
			if b == r {
				shown[name], found = true, true
			}
		}
		if !found {
			first, _, _ := strings.Cut(b, "\n")
			t.Errorf("docs/stages.md has a ```go block that is no example region (starting %q); put the code in docs/examples/stages between doc:begin and doc:end markers", first)
		}
	}
	names := make([]string, 0, len(regs))
	for n := range regs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if !shown[n] {
			t.Errorf("docs/stages.md lacks region %q verbatim as a ```go block; paste this there:\n```go\n%s```", n, regs[n])
		}
	}
}
