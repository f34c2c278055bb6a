package agent

import (
	"encoding/json"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// renderContent appends the text a model is given for a tool's result to
// dst: text parts as they are, joined by a blank line; other parts
// described in brackets ([image: image/png, 1234 bytes]); an embedded
// text resource as its URI and text. A result with no content but
// structured content is that content's JSON.
func renderContent(dst []byte, res *mcp.CallToolResult) []byte {
	start := len(dst)
	for _, c := range res.Content {
		if len(dst) > start {
			dst = append(dst, "\n\n"...)
		}
		switch c := c.(type) {
		case *mcp.TextContent:
			dst = append(dst, c.Text...)
		case *mcp.ImageContent:
			dst = fmt.Appendf(dst, "[image: %s, %d bytes]", orUnknown(c.MIMEType), len(c.Data))
		case *mcp.AudioContent:
			dst = fmt.Appendf(dst, "[audio: %s, %d bytes]", orUnknown(c.MIMEType), len(c.Data))
		case *mcp.ResourceLink:
			dst = append(dst, "[resource link: "...)
			dst = append(dst, c.URI...)
			if c.Name != "" {
				dst = append(dst, ", "...)
				dst = strconv.AppendQuote(dst, c.Name)
			}
			if c.MIMEType != "" {
				dst = append(dst, ", "...)
				dst = append(dst, c.MIMEType...)
			}
			if c.Description != "" {
				dst = append(dst, ": "...)
				dst = append(dst, c.Description...)
			}
			dst = append(dst, ']')
		case *mcp.EmbeddedResource:
			r := c.Resource
			switch {
			case r == nil:
				dst = append(dst, "[resource]"...)
			case r.Blob != nil:
				dst = fmt.Appendf(dst, "[resource %s: %s, %d bytes]", r.URI, orUnknown(r.MIMEType), len(r.Blob))
			default:
				dst = fmt.Appendf(dst, "[resource %s]\n", r.URI)
				dst = append(dst, r.Text...)
			}
		default:
			dst = fmt.Appendf(dst, "[content of type %T]", c)
		}
	}
	if len(res.Content) == 0 && res.StructuredContent != nil {
		if b, err := json.Marshal(res.StructuredContent); err == nil {
			dst = append(dst, b...)
		}
	}
	return dst
}

func orUnknown(mime string) string {
	if mime == "" {
		return "unknown type"
	}
	return mime
}

// truncate cuts text to at most limit bytes, a note included, at a UTF-8
// boundary; it reports whether it cut.
func truncate(text []byte, limit int) ([]byte, bool) {
	if len(text) <= limit {
		return text, false
	}
	note := fmt.Appendf(nil, "\n[truncated: the tool's result was %d bytes; the first %%d are shown]", len(text))
	keep := limit - len(note) - 8 // room for the number
	if keep < 0 {
		keep = 0
	}
	for keep > 0 && !utf8.RuneStart(text[keep]) {
		keep--
	}
	out := text[:keep]
	return fmt.Appendf(out, string(note), keep), true
}
