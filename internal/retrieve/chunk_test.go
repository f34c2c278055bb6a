package retrieve

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// words returns n distinct-ish words "w0 w1 ..." starting at from.
func words(from, n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "w%d", from+i)
	}
	return b.String()
}

type wantChunk struct {
	heading []string
	text    string // exact text, or a prefix when it ends in "…"
}

func TestSplit(t *testing.T) {
	small := ChunkOptions{MaxTokens: 16, OverlapTokens: -1} // 64 bytes, no overlap
	tests := []struct {
		name   string
		format Format
		in     string
		o      ChunkOptions
		want   []wantChunk
	}{
		{
			name: "text paragraphs packed", format: Text,
			in:   "one two.\n\nthree four.\n\n\nfive.",
			want: []wantChunk{{nil, "one two.\n\nthree four.\n\n\nfive."}},
		},
		{
			name: "text paragraphs split at the bound", format: Text, o: small,
			in: "alpha beta gamma delta epsilon zeta eta theta.\n\niota kappa lambda mu nu xi omicron pi.\n\nrho.",
			want: []wantChunk{
				{nil, "alpha beta gamma delta epsilon zeta eta theta."},
				{nil, "iota kappa lambda mu nu xi omicron pi.\n\nrho."},
			},
		},
		{
			name: "long paragraph cut at sentence ends", format: Text, o: small,
			in: "The first sentence is here. The second one follows it. A third one ends the paragraph.",
			want: []wantChunk{
				{nil, "The first sentence is here. The second one follows it."},
				{nil, "A third one ends the paragraph."},
			},
		},
		{
			name: "markdown headings make the path", format: Markdown,
			in: "# Guide\n\nIntro text.\n\n## Install\n\nRun the thing.\n\n### Linux\n\nUse apt.\n\n## Usage ##\n\nCall it.\n\nSetext\n======\n\nBody.",
			want: []wantChunk{
				{[]string{"Guide"}, "Intro text."},
				{[]string{"Guide", "Install"}, "Run the thing."},
				{[]string{"Guide", "Install", "Linux"}, "Use apt."},
				{[]string{"Guide", "Usage"}, "Call it."},
				{[]string{"Setext"}, "Body."},
			},
		},
		{
			name: "markdown fenced code kept whole", format: Markdown, o: ChunkOptions{MaxTokens: 20, OverlapTokens: -1},
			in: "# Code\n\nSee:\n\n```go\nfunc main() {\n\tprintln(\"hi\")\n}\n```\n\n# Next\n\n```\n# not a heading\n```",
			want: []wantChunk{
				{[]string{"Code"}, "See:\n\n```go\nfunc main() {\n\tprintln(\"hi\")\n}\n```"},
				{[]string{"Next"}, "```\n# not a heading\n```"},
			},
		},
		{
			name: "markdown unclosed fence runs to the end", format: Markdown,
			in:   "text\n\n~~~\ncode\n# still code",
			want: []wantChunk{{nil, "text\n\n~~~\ncode\n# still code"}},
		},
		{
			name: "markdown code longer than the bound is cut at lines", format: Markdown, o: small,
			in: "```\n" + strings.Repeat("line of code 1234\n", 6) + "```",
			want: []wantChunk{
				{nil, "```\nline of code 1234\nline of code 1234\nline of code 1234"},
				{nil, "line of code 1234\nline of code 1234\nline of code 1234\n```"},
			},
		},
		{
			name: "html structure", format: HTML,
			in: `<!DOCTYPE html><html><head><title>T</title><style>p{color:red}</style></head>
<body><h1>Main &amp; more</h1><p>First <b>bold</b> para.</p><script>var x = "<p>no</p>";</script>
<!-- a comment <p>no</p> --><div>Second
   para</div><h2>Sub</h2><ul><li>one</li><li>two</li></ul><pre>  a
    b</pre><p>x &lt; y &#38; caf&eacute;</p></body></html>`,
			want: []wantChunk{
				{[]string{"Main & more"}, "First bold para.\n\nSecond para"},
				{[]string{"Main & more", "Sub"}, "one\n\ntwo\n\n  a\n    b\n\nx < y & café"},
			},
		},
		{
			name: "html tolerant of broken markup", format: HTML,
			in:   `a < b and <p class="x>y">c<p>d <unclosed`,
			want: []wantChunk{{nil, "a < b and\n\nc\n\nd"}},
		},
		{
			name: "jsonl records", format: JSONL,
			in: `{"text": "Alpha record.", "id": "r1", "title": "First", "url": "http://a", "metadata": {"lang": "en", "n": 3}}

{"text": "Beta record."}
`,
			want: []wantChunk{
				{[]string{"First"}, "Alpha record."},
				{nil, "Beta record."},
			},
		},
		{
			name: "unicode text cut at rune boundaries", format: Text, o: small,
			in: strings.Repeat("é", 100),
			want: []wantChunk{
				{nil, strings.Repeat("é", 32)},
				{nil, strings.Repeat("é", 32)},
				{nil, strings.Repeat("é", 32)},
				{nil, strings.Repeat("é", 4)},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Split([]byte(tc.in), tc.format, tc.o)
			if err != nil {
				t.Fatalf("Split: %v", err)
			}
			var gw []wantChunk
			for _, c := range got {
				gw = append(gw, wantChunk{c.Heading, c.Text})
			}
			if len(gw) != len(tc.want) {
				t.Fatalf("got %d chunks, want %d:\n%q", len(gw), len(tc.want), gw)
			}
			for i := range gw {
				if !slices.Equal(gw[i].heading, tc.want[i].heading) || gw[i].text != tc.want[i].text {
					t.Errorf("chunk %d = %q, want %q", i, gw[i], tc.want[i])
				}
			}
			checkChunks(t, tc.in, tc.format, tc.o, got)
		})
	}
}

// checkChunks checks the invariants of any split: positions, the token
// bound, and for text and Markdown that Text is the content at the offsets.
func checkChunks(t *testing.T, in string, f Format, o ChunkOptions, got []Chunk) {
	t.Helper()
	o, _ = o.withDefaults()
	for i, c := range got {
		if c.Pos != i {
			t.Errorf("chunk %d has Pos %d", i, c.Pos)
		}
		if c.Tokens != EstimateTokens(c.Text) || c.Tokens > o.MaxTokens {
			t.Errorf("chunk %d: %d tokens (estimate %d), bound %d", i, c.Tokens, EstimateTokens(c.Text), o.MaxTokens)
		}
		if c.Start < 0 || c.End > len(in) || c.Start >= c.End {
			t.Errorf("chunk %d: offsets [%d, %d) outside [0, %d)", i, c.Start, c.End, len(in))
		}
		if (f == Text || f == Markdown) && in[c.Start:c.End] != c.Text {
			t.Errorf("chunk %d: content[%d:%d] = %q, Text %q", i, c.Start, c.End, in[c.Start:c.End], c.Text)
		}
		if strings.TrimSpace(c.Text) != c.Text || c.Text == "" {
			t.Errorf("chunk %d: text %q not trimmed or empty", i, c.Text)
		}
	}
}

func TestSplitOverlap(t *testing.T) {
	in := words(0, 200) // 200 words, one paragraph
	o := ChunkOptions{MaxTokens: 32, OverlapTokens: 8}
	got, err := Split([]byte(in), Text, o)
	if err != nil {
		t.Fatal(err)
	}
	checkChunks(t, in, Text, o, got)
	if len(got) < 8 {
		t.Fatalf("%d chunks", len(got))
	}
	for i := 1; i < len(got); i++ {
		prev, cur := got[i-1], got[i]
		ov := prev.End - cur.Start
		if ov <= 0 || ov > 8*BytesPerToken {
			t.Errorf("chunks %d and %d overlap by %d bytes, want 1 to %d", i-1, i, ov, 8*BytesPerToken)
		}
		if !strings.HasPrefix(cur.Text, in[cur.Start:prev.End]) || !strings.HasPrefix(cur.Text, "w") {
			t.Errorf("chunk %d does not start with a whole word of the previous one: %q", i, cur.Text[:10])
		}
	}
	// Every word is in some chunk.
	all := strings.Join(func() []string {
		var s []string
		for _, c := range got {
			s = append(s, c.Text)
		}
		return s
	}(), " ")
	for i := range 200 {
		if !strings.Contains(all+" ", fmt.Sprintf("w%d ", i)) {
			t.Fatalf("word w%d lost", i)
		}
	}

	// No overlap across a heading.
	md := "# A\n\n" + words(0, 60) + "\n\n# B\n\n" + words(100, 60)
	got, err = Split([]byte(md), Markdown, o)
	if err != nil {
		t.Fatal(err)
	}
	checkChunks(t, md, Markdown, o, got)
	for i := 1; i < len(got); i++ {
		if !slices.Equal(got[i-1].Heading, got[i].Heading) && got[i].Start < got[i-1].End {
			t.Errorf("chunk %d (%v) overlaps chunk %d (%v) across a heading", i, got[i].Heading, i-1, got[i-1].Heading)
		}
	}
}

func TestSplitBound(t *testing.T) {
	// Random-ish mixed input at several bounds: the invariants hold.
	var b strings.Builder
	for i := range 300 {
		switch i % 17 {
		case 0:
			fmt.Fprintf(&b, "\n## Section %d\n\n", i)
		case 5:
			b.WriteString("\n```\ncode line one\ncode line two\n```\n\n")
		case 9:
			b.WriteString(strings.Repeat("x", 300) + " ")
		default:
			b.WriteString(words(i*7, i%13+1) + ". ")
			if i%3 == 0 {
				b.WriteString("\n\n")
			}
		}
	}
	in := b.String()
	for _, mt := range []int{16, 50, 256, 1000} {
		for _, ov := range []int{-1, 0, mt / 4, mt / 2} {
			o := ChunkOptions{MaxTokens: mt, OverlapTokens: ov}
			got, err := Split([]byte(in), Markdown, o)
			if err != nil {
				t.Fatal(err)
			}
			checkChunks(t, in, Markdown, o, got)
		}
	}
}

func TestSplitErrors(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		format Format
		o      ChunkOptions
		is     error
		msg    string
	}{
		{"empty", "", Text, ChunkOptions{}, ErrEmpty, "no text"},
		{"white space", " \n\t\n", Markdown, ChunkOptions{}, ErrEmpty, "no text"},
		{"only markup", "<html><script>x</script></html>", HTML, ChunkOptions{}, ErrEmpty, "no text left"},
		{"only headings", "# A\n## B", Markdown, ChunkOptions{}, ErrEmpty, "no text left"},
		{"NUL", "abc\x00def", Text, ChunkOptions{}, ErrBinary, "NUL byte at offset 3"},
		{"invalid UTF-8", "abc\xff\xfedef", Text, ChunkOptions{}, ErrBinary, "invalid UTF-8 at offset 3"},
		{"PNG", "\x89PNG\r\n\x1a\n\x00\x00", Text, ChunkOptions{}, ErrBinary, ""},
		{"too large", strings.Repeat("a ", 600), Text, ChunkOptions{MaxBytes: 1000}, ErrTooLarge, "1200 bytes, the limit is 1000"},
		{"unknown format", "x", "pdf", ChunkOptions{}, nil, `unknown format "pdf"`},
		{"bound too small", "x", Text, ChunkOptions{MaxTokens: 8}, nil, "max_tokens 8: must be at least 16"},
		{"overlap too large", "x", Text, ChunkOptions{MaxTokens: 32, OverlapTokens: 17}, nil, "overlap_tokens 17: must be at most max_tokens/2 (16)"},
		{"jsonl not an object", "[1]", JSONL, ChunkOptions{}, nil, "jsonl line 1:"},
		{"jsonl unknown field", "{\"text\": \"a\"}\n{\"text\": \"b\", \"body\": 1}", JSONL, ChunkOptions{}, nil, `jsonl line 2: json: unknown field "body"`},
		{"jsonl missing text", `{"id": "x"}`, JSONL, ChunkOptions{}, nil, `jsonl line 1: missing "text"`},
		{"jsonl repeated id", "{\"text\": \"a\", \"id\": \"x\"}\n\n{\"text\": \"b\", \"id\": \"x\"}", JSONL, ChunkOptions{}, nil, `jsonl line 3: id "x" repeats line 1`},
		{"jsonl two values", `{"text": "a"} {"text": "b"}`, JSONL, ChunkOptions{}, nil, "jsonl line 1: more than one JSON value"},
		{"jsonl bad metadata", `{"text": "a", "metadata": {"x": [1]}}`, JSONL, ChunkOptions{}, nil, "jsonl line 1: metadata.x: []interface {} is not a string, number or boolean"},
		{"jsonl empty texts", `{"text": ""}`, JSONL, ChunkOptions{}, ErrEmpty, "no text left"},
		{"jsonl NUL in text", `{"text": "a\u0000b"}`, JSONL, ChunkOptions{}, ErrBinary, "jsonl line 1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Split([]byte(tc.in), tc.format, tc.o)
			if err == nil {
				t.Fatal("no error")
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v is not %v", err, tc.is)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not contain %q", err, tc.msg)
			}
		})
	}
}

func TestSplitJSONLFields(t *testing.T) {
	in := `{"text": "Alpha record.", "id": "r1", "title": "First", "url": "http://a", "metadata": {"lang": "en", "n": 3}}` + "\n" + `{"text": "Beta."}`
	got, err := Split([]byte(in), JSONL, ChunkOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c := got[0]
	if c.Record != "r1" || c.URL != "http://a" || c.Metadata["lang"] != "en" || c.Metadata["n"] != 3.0 {
		t.Errorf("record fields: %+v", c)
	}
	if c.Start != 0 || in[c.End] != '\n' || got[1].Start != c.End+1 || got[1].End != len(in) {
		t.Errorf("offsets [%d,%d) [%d,%d) do not span the lines", c.Start, c.End, got[1].Start, got[1].End)
	}
}

func TestFormatOf(t *testing.T) {
	for name, want := range map[string]Format{
		"a.md": Markdown, "b.MARKDOWN": Markdown, "c.html": HTML, "d.htm": HTML,
		"e.jsonl": JSONL, "f.ndjson": JSONL, "g.txt": Text, "h": Text, "dir.md/x.go": Text,
	} {
		if got := FormatOf(name); got != want {
			t.Errorf("FormatOf(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestEstimateTokens(t *testing.T) {
	for s, want := range map[string]int{"": 0, "a": 1, "abcd": 1, "abcde": 2, "é": 1, strings.Repeat("x", 1024): 256} {
		if got := EstimateTokens(s); got != want {
			t.Errorf("EstimateTokens(%q) = %d, want %d", s, got, want)
		}
	}
}
