package retrieve

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

// record is one line of a JSON Lines document.
type record struct {
	Text     *string        `json:"text"`
	Metadata map[string]any `json:"metadata"`
	ID       string         `json:"id"`
	Title    string         `json:"title"`
	URL      string         `json:"url"`
}

// splitJSONL chunks each record of a JSON Lines document as plain text.
// Blank lines are skipped; a line that is not one JSON object with a
// string "text", or has another field than text, metadata, id, title and
// url, or repeats an earlier line's id, is an error naming the line.
func splitJSONL(content []byte, o ChunkOptions) ([]Chunk, error) {
	var out []Chunk
	ids := map[string]int{}
	line := 0
	for off := 0; off < len(content); {
		line++
		e := bytes.IndexByte(content[off:], '\n')
		next := len(content)
		if e < 0 {
			e = len(content)
		} else {
			e += off
			next = e + 1
		}
		ls, raw := off, content[off:e]
		off = next
		if len(bytes.TrimSpace(raw)) == 0 {
			continue
		}
		var r record
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil {
			return nil, fmt.Errorf("retrieve: jsonl line %d: %v", line, err)
		}
		if dec.More() {
			return nil, fmt.Errorf("retrieve: jsonl line %d: more than one JSON value", line)
		}
		if r.Text == nil {
			return nil, fmt.Errorf("retrieve: jsonl line %d: missing \"text\"", line)
		}
		if r.ID != "" {
			if prev, dup := ids[r.ID]; dup {
				return nil, fmt.Errorf("retrieve: jsonl line %d: id %q repeats line %d", line, r.ID, prev)
			}
			ids[r.ID] = line
		}
		meta, err := normalizeMetadata(r.Metadata)
		if err != nil {
			return nil, fmt.Errorf("retrieve: jsonl line %d: %v", line, err)
		}
		text := *r.Text
		if strings.IndexByte(text, 0) >= 0 || !utf8.ValidString(text) {
			return nil, fmt.Errorf("%w: jsonl line %d: text holds NUL or invalid UTF-8", ErrBinary, line)
		}
		var base []string
		if t := strings.TrimSpace(r.Title); t != "" {
			base = []string{t}
		}
		first := len(out)
		out = pack(text, textBlocks(text), base, true, o, out)
		for i := first; i < len(out); i++ {
			c := &out[i]
			c.Start, c.End = ls, e
			c.Record, c.URL, c.Metadata = r.ID, r.URL, meta
		}
	}
	return out, nil
}
