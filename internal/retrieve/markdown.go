package retrieve

import "strings"

// markdownBlocks splits Markdown into headings, fenced code blocks and
// paragraphs. It is line based and tolerant: ATX headings (# to ######),
// setext headings under a one-line paragraph (=== for level 1, --- for
// level 2), fences of three or more ` or ~ closed by a fence of the same
// character at least as long (or the end of the input). Everything else
// is paragraph text, separated by blank lines, kept with its markup.
func markdownBlocks(s string) []block {
	var out []block
	start, lines := -1, 0 // the open paragraph
	var fence string      // the open fence's marker, "" if none
	fenceStart := 0
	endPara := func(e int) {
		if start >= 0 {
			out = append(out, para(start, e))
			start, lines = -1, 0
		}
	}
	forLines(s, func(ls, le int, line string) {
		t, indent := trimIndent(line)
		if fence != "" {
			if indent <= 3 && strings.HasPrefix(t, fence) && strings.Trim(t, fence[:1]+" \t\r") == "" {
				out = append(out, block{kind: blockCode, bs: fenceStart, be: le, ss: fenceStart, se: le})
				fence = ""
			}
			return
		}
		if indent <= 3 {
			if m := fenceMarker(t); m != "" {
				endPara(ls)
				fence, fenceStart = m, ls
				return
			}
			if lvl, text, ok := atxHeading(t); ok {
				endPara(ls)
				out = append(out, block{kind: blockHeading, level: lvl, text: text})
				return
			}
			if lines == 1 && (isUnderline(t, '=') || isUnderline(t, '-')) {
				lvl := 1
				if t[0] == '-' {
					lvl = 2
				}
				text := strings.TrimSpace(s[start:ls])
				start, lines = -1, 0
				out = append(out, block{kind: blockHeading, level: lvl, text: text})
				return
			}
		}
		if isBlank(line) {
			endPara(ls)
			return
		}
		if start < 0 {
			start = ls
		}
		lines++
	})
	if fence != "" {
		out = append(out, block{kind: blockCode, bs: fenceStart, be: len(s), ss: fenceStart, se: len(s)})
	}
	endPara(len(s))
	return out
}

func trimIndent(line string) (string, int) {
	n := 0
	for n < len(line) && (line[n] == ' ' || line[n] == '\t') {
		n++
	}
	return line[n:], n
}

// fenceMarker returns the opening fence of t (``` or longer, ~~~ or
// longer), or "".
func fenceMarker(t string) string {
	if len(t) < 3 || (t[0] != '`' && t[0] != '~') {
		return ""
	}
	n := 0
	for n < len(t) && t[n] == t[0] {
		n++
	}
	if n < 3 || (t[0] == '`' && strings.IndexByte(t[n:], '`') >= 0) {
		return ""
	}
	return t[:n]
}

func atxHeading(t string) (int, string, bool) {
	n := 0
	for n < len(t) && t[n] == '#' {
		n++
	}
	if n == 0 || n > 6 || (n < len(t) && t[n] != ' ' && t[n] != '\t') {
		return 0, "", false
	}
	text := strings.TrimSpace(t[n:])
	// A closing sequence of #s preceded by a space is not text.
	if c := strings.TrimRight(text, "#"); c != text && (c == "" || c[len(c)-1] == ' ' || c[len(c)-1] == '\t') {
		text = strings.TrimSpace(c)
	}
	return n, text, true
}

func isUnderline(t string, c byte) bool {
	t = strings.TrimRight(t, " \t\r")
	if t == "" {
		return false
	}
	for i := 0; i < len(t); i++ {
		if t[i] != c {
			return false
		}
	}
	return true
}
