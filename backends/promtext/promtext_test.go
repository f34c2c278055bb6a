package promtext

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// render writes every sample of in as "name{k=v,...} value [ts]" lines, the
// labels unescaped, so a table case can state what the parser saw.
func render(t *testing.T, in string) (string, error) {
	t.Helper()
	var b strings.Builder
	var p Parser
	err := p.Parse([]byte(in), func(s *Sample) error {
		b.Write(s.Name)
		b.WriteByte('{')
		first := true
		s.EachLabel(func(n, v []byte) bool {
			if !first {
				b.WriteByte(',')
			}
			first = false
			fmt.Fprintf(&b, "%s=%q", n, v)
			return true
		})
		fmt.Fprintf(&b, "} %v", s.Value)
		if s.HasTimestamp {
			fmt.Fprintf(&b, " @%d", s.Timestamp)
		}
		fmt.Fprintf(&b, " L%d\n", s.Line)
		return nil
	})
	return b.String(), err
}

func TestParse(t *testing.T) {
	cases := []struct {
		name, in, want string
	}{
		{"empty", "", ""},
		{"comments and blanks", "# HELP a The a.\n# TYPE a gauge\n\n   \n# just a comment\n", ""},
		{"bare", "a 1\n", "a{} 1 L1\n"},
		{"no final newline", "a 1", "a{} 1 L1\n"},
		{"colon name", "vllm:num_requests_waiting{model_name=\"m\"} 3.0\n", "vllm:num_requests_waiting{model_name=\"m\"} 3 L1\n"},
		{"several labels", `x{a="1",b="two"} 2` + "\n", `x{a="1",b="two"} 2 L1` + "\n"},
		{"trailing comma", `x{a="1",} 2`, `x{a="1"} 2 L1` + "\n"},
		{"empty braces", `x{} 2`, "x{} 2 L1\n"},
		{"spaces in braces", `x{ a = "1" , b="2" } 2`, `x{a="1",b="2"} 2 L1` + "\n"},
		{"escapes", `x{p="a\\b",q="say \"hi\"",r="l1\nl2"} 1`, `x{p="a\\b",q="say \"hi\"",r="l1\nl2"} 1 L1` + "\n"},
		{"braces and commas in a value", `x{le="{,}"} 1`, `x{le="{,}"} 1 L1` + "\n"},
		{"empty value", `x{a=""} 1`, `x{a=""} 1 L1` + "\n"},
		{"NaN", "a NaN", "a{} NaN L1\n"},
		{"+Inf", `a_bucket{le="+Inf"} +Inf`, `a_bucket{le="+Inf"} +Inf L1` + "\n"},
		{"-Inf", "a -Inf", "a{} -Inf L1\n"},
		{"exponent", "a 1.74262400557e+09\nb 8.128902e+06\nc -1e-3\nd 1E3", "a{} 1.74262400557e+09 L1\nb{} 8.128902e+06 L2\nc{} -0.001 L3\nd{} 1000 L4\n"},
		{"integer and negative", "a 42\nb -1.0", "a{} 42 L1\nb{} -1 L2\n"},
		{"timestamp", "a 1 1700074049000\nb{x=\"y\"} 2 -5", "a{} 1 @1700074049000 L1\nb{x=\"y\"} 2 @-5 L2\n"},
		{"CRLF", "# TYPE a gauge\r\na 1\r\nb 2 3\r\n\r\n", "a{} 1 L2\nb{} 2 @3 L3\n"},
		{"tabs", "a\t1\t2", "a{} 1 @2 L1\n"},
		{"indented", "  a 1", "a{} 1 L1\n"},
		{"trailing space", "a 1 ", "a{} 1 L1\n"},
		{"line numbers", "# c\na 1\n\nb 2\n", "a{} 1 L2\nb{} 2 L4\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := render(t, c.in)
			if err != nil {
				t.Fatalf("Parse(%q): %v", c.in, err)
			}
			if got != c.want {
				t.Errorf("Parse(%q):\ngot  %q\nwant %q", c.in, got, c.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct {
		name, in string
		line     int
		msg      string
	}{
		{"no value", "a\n", 1, "want a space and a value"},
		{"no value after space", "a \n", 1, "bad value"},
		{"bad value", "ok 1\na one\n", 2, `bad value "one"`},
		{"bad name", "1a 1", 1, "want a metric name"},
		{"garbage", "<html><body>502 Bad Gateway</body></html>", 1, "want a metric name"},
		{"json", `{"error": "x"}`, 1, "want a metric name"},
		{"unclosed labels", `a{b="c" 1`, 1, "want ',' or '}'"},
		{"unclosed labels at end", `a{b="c",`, 1, "labels not closed"},
		{"unquoted label value", `a{b=c} 1`, 1, "want a quoted value"},
		{"no equals", `a{b} 1`, 1, "want '='"},
		{"bad label name", `a{1b="c"} 1`, 1, "want a label name"},
		{"unterminated value", `a{b="c} 1`, 1, "unterminated quoted value"},
		{"bad escape", `a{b="\t"} 1`, 1, `bad escape \t`},
		{"escape at end", `a{b="\`, 1, "unterminated escape"},
		{"bad timestamp", "a 1 soon", 1, "bad timestamp"},
		{"float timestamp", "a 1 1.5", 1, "bad timestamp"},
		{"extra field", "a 1 2 3", 1, "after the timestamp"},
		{"no space before value", `a{b="c"}1`, 1, "want a space and a value"},
		{"third line", "a 1\r\nb 2\r\nc{", 3, "labels not closed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := render(t, c.in)
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("Parse(%q): err %v; want a *SyntaxError", c.in, err)
			}
			if se.Line != c.line || !strings.Contains(se.Msg, c.msg) {
				t.Errorf("Parse(%q): %v; want line %d and %q", c.in, err, c.line, c.msg)
			}
			if !strings.HasPrefix(err.Error(), fmt.Sprintf("line %d: ", c.line)) {
				t.Errorf("error %q does not start with its line", err)
			}
		})
	}
}

func TestCallbackErrorStops(t *testing.T) {
	stop := errors.New("enough")
	n := 0
	var p Parser
	err := p.Parse([]byte("a 1\nb 2\nc 3\n"), func(s *Sample) error {
		n++
		if string(s.Name) == "b" {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 2 {
		t.Errorf("got err %v after %d samples; want the callback's error after 2", err, n)
	}
}

func TestLabel(t *testing.T) {
	var p Parser
	var got []string
	err := p.Parse([]byte(`vllm:cache_config_info{block_size="16",num_gpu_blocks="81767",note="a\"b"} 1.0`), func(s *Sample) error {
		for _, n := range []string{"block_size", "num_gpu_blocks", "note", "missing"} {
			v, ok := s.Label(n)
			got = append(got, fmt.Sprintf("%s=%s/%t", n, v, ok))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := `block_size=16/true num_gpu_blocks=81767/true note=a"b/true missing=/false`
	if s := strings.Join(got, " "); s != want {
		t.Errorf("labels: got %s; want %s", s, want)
	}
}

func TestValues(t *testing.T) {
	var p Parser
	var vals []float64
	err := p.Parse([]byte("a NaN\nb +Inf\nc -Inf\nd 1e400\ne 0x1p-2\n"), func(s *Sample) error {
		vals = append(vals, s.Value)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !math.IsNaN(vals[0]) || !math.IsInf(vals[1], 1) || !math.IsInf(vals[2], -1) || !math.IsInf(vals[3], 1) || vals[4] != 0.25 {
		t.Errorf("values: %v", vals)
	}
}

// TestParseReader: reading from an io.Reader sees what Parse sees, lines
// longer than the read buffer included.
func TestParseReader(t *testing.T) {
	long := "x{v=\"" + strings.Repeat("z", 100<<10) + "\"} 7\n"
	for _, in := range []string{"a 1\r\nb{c=\"d\"} 2 3\n# x\nc 4", long + "a 1\n"} {
		want, werr := render(t, in)
		var b strings.Builder
		var p Parser
		err := p.ParseReader(strings.NewReader(in), func(s *Sample) error {
			fmt.Fprintf(&b, "%s %v L%d\n", s.Name, s.Value, s.Line)
			return nil
		})
		if err != nil || werr != nil {
			t.Fatalf("errors: %v, %v", err, werr)
		}
		if strings.Count(want, "\n") != strings.Count(b.String(), "\n") {
			t.Errorf("ParseReader saw %q; Parse saw %q", b.String(), want)
		}
	}
	huge := "x{v=\"" + strings.Repeat("z", MaxLineBytes+10) + "\"} 7\n"
	var p Parser
	err := p.ParseReader(strings.NewReader(huge), func(*Sample) error { return nil })
	var se *SyntaxError
	if !errors.As(err, &se) || se.Line != 1 {
		t.Errorf("a line over MaxLineBytes: %v; want a SyntaxError at line 1", err)
	}
}

// TestRealPages: every saved page parses, with a sample count that shows
// the whole page was read.
func TestRealPages(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.txt")
	if len(files) == 0 {
		t.Fatal("no testdata pages")
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		var p Parser
		if err := p.Parse(b, func(*Sample) error { n++; return nil }); err != nil {
			t.Errorf("%s: %v", f, err)
		}
		lines := 0
		for _, l := range strings.Split(string(b), "\n") {
			if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
				lines++
			}
		}
		if n != lines {
			t.Errorf("%s: %d samples; the page has %d sample lines", f, n, lines)
		}
	}
}

// FuzzParse: no input panics; what parses parses again the same way from a
// reader; a SyntaxError's line is within the input.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.txt")
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{"a 1", `a{b="c\"d\n"} NaN 12`, "a{", "a{b=\"", "\r\n\r\n", "a 1e", "# TYPE\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var p Parser
		n1 := 0
		err1 := p.Parse(in, func(s *Sample) error {
			n1++
			s.EachLabel(func(_, _ []byte) bool { return true })
			_, _ = s.Label("le")
			return nil
		})
		var se *SyntaxError
		if errors.As(err1, &se) && (se.Line < 1 || se.Line > strings.Count(string(in), "\n")+1) {
			t.Fatalf("error line %d outside the input: %v", se.Line, err1)
		}
		n2 := 0
		err2 := p.ParseReader(strings.NewReader(string(in)), func(*Sample) error { n2++; return nil })
		if (err1 == nil) != (err2 == nil) || n1 != n2 {
			t.Fatalf("Parse: %d samples, %v; ParseReader: %d samples, %v", n1, err1, n2, err2)
		}
	})
}
