package retrieve

import (
	"html"
	"strings"
)

// htmlBlocks extracts the text of an HTML document as blocks over a new
// buffer, with the source span of each. The tokenizer is small and
// tolerant rather than a full HTML5 parser (golang.org/x/net/html is not a
// dependency of the module, and chunking needs only text, headings and
// block boundaries): a '<' not starting a tag is text, quoted attribute
// values may hold '>', an unclosed comment or raw element runs to the end.
func htmlBlocks(src []byte) (string, []block) {
	s := string(src)
	var (
		buf    strings.Builder
		blocks []block
		cur    strings.Builder // text of the open block, white space collapsed
		curSS  = -1            // source start of the open block's text
		curSE  int
		space  bool // a space is pending before the next word
		pre    int  // depth of open <pre>
		head   int  // open heading level, 0 if none
		inHead bool // inside <head>
	)
	// flush ends the open block; kind says what it was.
	flush := func() {
		text := cur.String()
		cur.Reset()
		space = false
		if curSS < 0 {
			return
		}
		ss, se := curSS, curSE
		curSS = -1
		if head > 0 {
			if t := strings.TrimSpace(text); t != "" {
				blocks = append(blocks, block{kind: blockHeading, level: head, text: t})
			}
			return
		}
		if pre == 0 {
			text = strings.TrimSpace(text)
		} else {
			text = strings.Trim(text, "\n")
		}
		if strings.TrimSpace(text) == "" {
			return
		}
		if buf.Len() > 0 {
			buf.WriteString("\n\n")
		}
		bs := buf.Len()
		buf.WriteString(text)
		kind := blockPara
		if pre > 0 {
			kind = blockCode
		}
		blocks = append(blocks, block{kind: kind, bs: bs, be: buf.Len(), ss: ss, se: se})
	}
	addText := func(raw string, ss, se int) {
		if inHead && head == 0 {
			return
		}
		t := html.UnescapeString(raw)
		if pre > 0 {
			cur.WriteString(t)
		} else {
			for _, r := range t {
				if isHTMLSpace(r) {
					space = space || cur.Len() > 0
					continue
				}
				if space {
					cur.WriteByte(' ')
					space = false
				}
				cur.WriteRune(r)
			}
			if strings.TrimFunc(t, isHTMLSpace) == "" {
				return
			}
		}
		if curSS < 0 {
			curSS = ss
		}
		curSE = se
	}
	i := 0
	for i < len(s) {
		lt := strings.IndexByte(s[i:], '<')
		if lt < 0 {
			addText(s[i:], i, len(s))
			break
		}
		if lt > 0 {
			addText(s[i:i+lt], i, i+lt)
		}
		i += lt
		rest := s[i:]
		switch {
		case strings.HasPrefix(rest, "<!--"):
			if e := strings.Index(rest[4:], "-->"); e >= 0 {
				i += 4 + e + 3
			} else {
				i = len(s)
			}
			continue
		case len(rest) > 1 && (rest[1] == '!' || rest[1] == '?'):
			if e := strings.IndexByte(rest, '>'); e >= 0 {
				i += e + 1
			} else {
				i = len(s)
			}
			continue
		}
		name, end, closing, ok := scanTag(rest)
		if !ok {
			addText("<", i, i+1)
			i++
			continue
		}
		tagEnd := i + end
		i = tagEnd
		switch name {
		case "script", "style", "template", "noscript", "title", "textarea", "svg", "math", "iframe", "object":
			if !closing {
				// Skip the raw content up to the matching end tag.
				if e := indexFold(s[i:], "</"+name); e >= 0 {
					i += e
				} else {
					i = len(s)
				}
			}
			continue
		case "head":
			inHead = !closing
			continue
		case "h1", "h2", "h3", "h4", "h5", "h6":
			flush()
			if closing {
				head = 0
			} else {
				head = int(name[1] - '0')
			}
			continue
		case "pre":
			flush()
			if closing {
				pre = max(pre-1, 0)
			} else {
				pre++
			}
			continue
		case "br":
			if pre > 0 {
				cur.WriteByte('\n')
				continue
			}
			if head == 0 {
				flush()
			}
			continue
		case "td", "th":
			space = cur.Len() > 0
			continue
		}
		if blockTags[name] && head == 0 && pre == 0 {
			flush()
		}
	}
	flush()
	return buf.String(), blocks
}

var blockTags = map[string]bool{
	"p": true, "div": true, "li": true, "ul": true, "ol": true, "dl": true, "dt": true, "dd": true,
	"tr": true, "table": true, "thead": true, "tbody": true, "tfoot": true, "caption": true,
	"section": true, "article": true, "aside": true, "header": true, "footer": true, "nav": true,
	"main": true, "blockquote": true, "figure": true, "figcaption": true, "form": true,
	"fieldset": true, "hr": true, "address": true, "details": true, "summary": true, "body": true,
	"html": true, "option": true, "legend": true,
}

// scanTag reads the tag at the start of s ("<name ...>" or "</name ...>"),
// returning its lowercased name and the offset just past its '>'.
func scanTag(s string) (name string, end int, closing, ok bool) {
	i := 1
	if i < len(s) && s[i] == '/' {
		closing = true
		i++
	}
	st := i
	for i < len(s) && (isASCIILetter(s[i]) || (i > st && (s[i] >= '0' && s[i] <= '9' || s[i] == '-' || s[i] == ':'))) {
		i++
	}
	if i == st {
		return "", 0, false, false
	}
	name = strings.ToLower(s[st:i])
	var quote byte
	for ; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '>':
			return name, i + 1, closing, true
		}
	}
	return name, len(s), closing, true // unclosed tag: runs to the end
}

func isASCIILetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

func isHTMLSpace(r rune) bool {
	return r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '\f' || r == '\u00a0'
}

// indexFold is strings.Index for an ASCII needle, ignoring case.
func indexFold(s, needle string) int {
	n := len(needle)
	for i := 0; i+n <= len(s); i++ {
		if strings.EqualFold(s[i:i+n], needle) {
			return i
		}
	}
	return -1
}
