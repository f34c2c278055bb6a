package retrieve

import (
	"bytes"
	"errors"
	"fmt"
	"path"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Format is the format of a document's content.
type Format string

// The input formats of Split.
const (
	// Text is plain text: paragraphs are separated by blank lines.
	Text Format = "text"
	// Markdown: ATX (#) and one-line setext headings make the heading
	// path; fenced code blocks (``` or ~~~) are kept whole when they fit.
	Markdown Format = "markdown"
	// HTML: tags are stripped, script, style, template, noscript, title
	// and comments dropped, entities decoded; h1-h6 make the heading path,
	// block elements (p, div, li, tr, br, ...) end paragraphs, pre is code.
	HTML Format = "html"
	// JSONL is JSON Lines: one object a line, {"text": "...", "metadata":
	// {...}, "id": "...", "title": "...", "url": "..."}, only text
	// required; each record's text is chunked as Text.
	JSONL Format = "jsonl"
)

// FormatOf returns the format for a file name's extension (.md, .markdown,
// .html, .htm, .jsonl, .ndjson; anything else is Text).
func FormatOf(name string) Format {
	switch strings.ToLower(path.Ext(name)) {
	case ".md", ".markdown", ".mdown":
		return Markdown
	case ".html", ".htm", ".xhtml":
		return HTML
	case ".jsonl", ".ndjson":
		return JSONL
	}
	return Text
}

// ChunkOptions bounds chunks. The zero value gives the defaults.
type ChunkOptions struct {
	// MaxTokens is the largest chunk, in estimated tokens (EstimateTokens:
	// 4 bytes a token). Default 256, at least 16.
	MaxTokens int `json:"max_tokens,omitempty"`
	// OverlapTokens is how much of the previous chunk's end a chunk
	// repeats when both are in one section (a section is never
	// continued across a heading). Default 32; 0 is the default, a
	// negative value means none; at most MaxTokens/2.
	OverlapTokens int `json:"overlap_tokens,omitempty"`
	// MaxBytes is the largest document content accepted. Default 16 MiB.
	MaxBytes int `json:"max_bytes,omitempty"`
}

// Defaults of ChunkOptions.
const (
	DefaultMaxTokens     = 256
	DefaultOverlapTokens = 32
	DefaultMaxBytes      = 16 << 20
)

func (o ChunkOptions) withDefaults() (ChunkOptions, error) {
	if o.MaxTokens == 0 {
		o.MaxTokens = DefaultMaxTokens
	}
	if o.MaxTokens < 16 {
		return o, fmt.Errorf("retrieve: max_tokens %d: must be at least 16", o.MaxTokens)
	}
	switch {
	case o.OverlapTokens == 0:
		o.OverlapTokens = min(DefaultOverlapTokens, o.MaxTokens/2)
	case o.OverlapTokens < 0:
		o.OverlapTokens = 0
	case o.OverlapTokens > o.MaxTokens/2:
		return o, fmt.Errorf("retrieve: overlap_tokens %d: must be at most max_tokens/2 (%d)", o.OverlapTokens, o.MaxTokens/2)
	}
	if o.MaxBytes == 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.MaxBytes < 0 {
		return o, fmt.Errorf("retrieve: max_bytes %d: must be positive", o.MaxBytes)
	}
	return o, nil
}

// Chunk is one piece of a document, the unit of search.
type Chunk struct {
	// Pos is the chunk's position in its document, from 0.
	Pos int `json:"pos"`
	// Start and End are byte offsets into the document's content. For Text
	// and Markdown, Text is exactly content[Start:End]. For HTML they span
	// the source of the blocks the text came from; for JSON Lines, the
	// record's line.
	Start int `json:"start"`
	End   int `json:"end"`
	// Heading is the path of headings above the chunk, outermost first
	// (for JSON Lines, the record's title).
	Heading []string `json:"heading,omitempty"`
	// Text is the chunk's text.
	Text string `json:"text"`
	// Tokens is EstimateTokens(Text), at most MaxTokens.
	Tokens int `json:"tokens"`
	// Record, URL and Metadata come from a JSON Lines record: its id, url
	// and metadata (which Search sees over the document's).
	Record   string         `json:"record,omitempty"`
	URL      string         `json:"url,omitempty"`
	Metadata map[string]any `json:"metadata,omitempty"`
}

// Errors of Split, wrapped with details.
var (
	ErrEmpty    = errors.New("retrieve: document has no text")
	ErrBinary   = errors.New("retrieve: document is not UTF-8 text")
	ErrTooLarge = errors.New("retrieve: document too large")
)

// Split cuts content into chunks of at most o.MaxTokens estimated tokens,
// following its structure: a chunk never spans a heading, paragraphs are
// packed whole while they fit, a longer paragraph is cut at sentence ends,
// then spaces, then characters, and a code block that fits stays whole.
// Consecutive chunks of one section overlap by up to o.OverlapTokens.
// Content that is empty or only white space, contains NUL bytes or is not
// valid UTF-8, or exceeds o.MaxBytes, is refused with ErrEmpty, ErrBinary
// or ErrTooLarge.
func Split(content []byte, f Format, o ChunkOptions) ([]Chunk, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := checkContent(content, o.MaxBytes); err != nil {
		return nil, err
	}
	var chunks []Chunk
	switch f {
	case Text, "":
		s := string(content)
		chunks = pack(s, textBlocks(s), nil, true, o, nil)
	case Markdown:
		s := string(content)
		chunks = pack(s, markdownBlocks(s), nil, true, o, nil)
	case HTML:
		buf, blocks := htmlBlocks(content)
		chunks = pack(buf, blocks, nil, false, o, nil)
	case JSONL:
		if chunks, err = splitJSONL(content, o); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("retrieve: unknown format %q (want text, markdown, html or jsonl)", f)
	}
	if len(chunks) == 0 {
		return nil, fmt.Errorf("%w (no text left after parsing as %s)", ErrEmpty, f)
	}
	return chunks, nil
}

func checkContent(b []byte, maxBytes int) error {
	if len(b) > maxBytes {
		return fmt.Errorf("%w: %d bytes, the limit is %d", ErrTooLarge, len(b), maxBytes)
	}
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return fmt.Errorf("%w: NUL byte at offset %d", ErrBinary, i)
	}
	if !utf8.Valid(b) {
		i := 0
		for i < len(b) {
			r, n := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && n <= 1 {
				break
			}
			i += n
		}
		return fmt.Errorf("%w: invalid UTF-8 at offset %d", ErrBinary, i)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return ErrEmpty
	}
	return nil
}

type blockKind uint8

const (
	blockPara blockKind = iota
	blockCode
	blockHeading
)

// block is one structural element. Paragraphs and code blocks are text
// buf[bs:be] from source src[ss:se]; a heading only sets the heading path
// (level 1-6, text).
type block struct {
	kind   blockKind
	level  int
	text   string
	bs, be int
	ss, se int
}

// span is a piece of buf that packing places whole.
type span struct {
	bs, be int
	ss, se int
}

// pack turns blocks over buf into chunks appended to out. With identity,
// buf is the source itself; base is the heading path to start from.
func pack(buf string, blocks []block, base []string, identity bool, o ChunkOptions, out []Chunk) []Chunk {
	maxB := o.MaxTokens * BytesPerToken
	ovB := o.OverlapTokens * BytesPerToken
	type level struct {
		n    int
		text string
	}
	var path []level
	heading := base
	var units []span
	flush := func() {
		out = packSection(buf, units, heading, maxB, ovB, identity, out)
		units = units[:0]
	}
	for _, b := range blocks {
		if b.kind == blockHeading {
			flush()
			for len(path) > 0 && path[len(path)-1].n >= b.level {
				path = path[:len(path)-1]
			}
			path = append(path, level{b.level, b.text})
			heading = append([]string(nil), base...)
			for _, l := range path {
				heading = append(heading, l.text)
			}
			continue
		}
		bs, be := trimSpan(buf, b.bs, b.be)
		if bs >= be {
			continue
		}
		unit := func(ps, pe int) span {
			if identity {
				return span{ps, pe, ps, pe}
			}
			return span{ps, pe, b.ss, b.se}
		}
		if be-bs <= maxB && (b.kind == blockCode || be-bs <= maxB-ovB) {
			units = append(units, unit(bs, be))
			continue
		}
		for _, p := range cutSpan(buf, bs, be, maxB-ovB, b.kind == blockCode) {
			units = append(units, unit(p[0], p[1]))
		}
	}
	flush()
	return out
}

// packSection packs the units of one section into chunks. With identity,
// buf is the source and offsets into it are source offsets.
func packSection(buf string, units []span, heading []string, maxB, ovB int, identity bool, out []Chunk) []Chunk {
	if len(units) == 0 {
		return out
	}
	var h []string
	if len(heading) > 0 {
		h = append([]string(nil), heading...)
	}
	// The current chunk is buf[cs:units[last].be] from units[first:last+1],
	// starting at source offset ss.
	first, cs, ss := 0, units[0].bs, units[0].ss
	emit := func(last int) {
		se := units[last].se
		for _, u := range units[first : last+1] {
			se = max(se, u.se)
		}
		text := buf[cs:units[last].be]
		out = append(out, Chunk{
			Pos: len(out), Start: ss, End: se, Heading: h,
			Text: text, Tokens: EstimateTokens(text),
		})
	}
	for i := 1; i < len(units); i++ {
		u := units[i]
		if u.be-cs <= maxB {
			continue
		}
		emit(i - 1)
		// The next chunk starts with up to ovB bytes of this one's end,
		// from a word start, when that still fits.
		prevFirst, ce := first, units[i-1].be
		first, cs, ss = i, u.bs, u.ss
		if ovB <= 0 {
			continue
		}
		p := overlapStart(buf, max(units[prevFirst].bs, ce-ovB), ce)
		if p >= ce || u.be-p > maxB {
			continue
		}
		k := i - 1
		for k > prevFirst && units[k].bs > p {
			k--
		}
		first, cs = k, p
		if identity {
			ss = p
		} else {
			ss = units[k].ss
		}
	}
	emit(len(units) - 1)
	return out
}

// overlapStart returns the first word start at or after p, before end, or
// end if there is none.
func overlapStart(buf string, p, end int) int {
	if p > 0 && !isSpaceByte(buf[p-1]) {
		for p < end && !isSpaceByte(buf[p]) {
			p++
		}
	}
	for p < end && isSpaceByte(buf[p]) {
		p++
	}
	return p
}

func isSpaceByte(c byte) bool {
	return c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\f' || c == '\v'
}

func trimSpan(buf string, bs, be int) (int, int) {
	for bs < be && isSpaceByte(buf[bs]) {
		bs++
	}
	for be > bs && isSpaceByte(buf[be-1]) {
		be--
	}
	return bs, be
}

// cutSpan cuts buf[bs:be] into pieces of at most limit bytes: code at line
// ends, prose at sentence ends, else at white space, else at a character
// boundary, each piece trimmed of white space.
func cutSpan(buf string, bs, be, limit int, code bool) [][2]int {
	var out [][2]int
	for bs < be {
		if be-bs <= limit {
			out = append(out, [2]int{bs, be})
			break
		}
		end := bs + limit
		cut := -1
		lo := bs + limit/2 // do not make tiny pieces to find a nicer cut
		if code {
			if i := strings.LastIndexByte(buf[lo:end], '\n'); i >= 0 {
				cut = lo + i + 1
			}
		} else {
			for i := end - 1; i > lo; i-- {
				if isSpaceByte(buf[i]) && (buf[i-1] == '.' || buf[i-1] == '!' || buf[i-1] == '?' || buf[i-1] == ';' || buf[i-1] == ':') {
					cut = i
					break
				}
			}
		}
		if cut < 0 {
			for i := end; i > lo; i-- {
				if isSpaceByte(buf[i-1]) {
					cut = i
					break
				}
			}
		}
		if cut < 0 {
			cut = end
			for cut > bs && !utf8.RuneStart(buf[cut]) {
				cut--
			}
		}
		ps, pe := trimSpan(buf, bs, cut)
		if ps < pe {
			out = append(out, [2]int{ps, pe})
		}
		bs = cut
		for bs < be && isSpaceByte(buf[bs]) {
			bs++
		}
	}
	return out
}

// textBlocks splits plain text into paragraphs at blank lines.
func textBlocks(s string) []block {
	var out []block
	start := -1
	forLines(s, func(ls, le int, line string) {
		if isBlank(line) {
			if start >= 0 {
				out = append(out, para(start, ls))
				start = -1
			}
			return
		}
		if start < 0 {
			start = ls
		}
	})
	if start >= 0 {
		out = append(out, para(start, len(s)))
	}
	return out
}

func para(s, e int) block { return block{kind: blockPara, bs: s, be: e, ss: s, se: e} }

// forLines calls fn for each line of s with its offsets (the line without
// its newline).
func forLines(s string, fn func(ls, le int, line string)) {
	for i := 0; i < len(s); {
		j := strings.IndexByte(s[i:], '\n')
		e := len(s)
		next := len(s)
		if j >= 0 {
			e, next = i+j, i+j+1
		}
		fn(i, e, s[i:e])
		i = next
	}
}

func isBlank(line string) bool {
	return strings.TrimFunc(line, unicode.IsSpace) == ""
}
