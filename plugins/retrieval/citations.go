package retrieval

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"

	"switchyard/gateway"
	"switchyard/internal/jsonscan"
)

// annotation is one url_citation of the OpenAI chat completion message
// (ChatCompletionResponseMessage.annotations): the span of a marker such
// as [2] in the message content, in characters (Unicode code points, as
// OpenAI counts them), end exclusive, and what it cites.
type annotation struct {
	Type        string      `json:"type"`
	URLCitation urlCitation `json:"url_citation"`
}

type urlCitation struct {
	StartIndex int    `json:"start_index"`
	EndIndex   int    `json:"end_index"`
	URL        string `json:"url"`
	Title      string `json:"title"`
}

// findCitations returns the annotations of text's markers: [n], [n, m]
// and runs like [n][m], for numbers of sources given; a marker of a number
// that was not a source is no citation.
func findCitations(text string, cites map[int]citation) []annotation {
	var out []annotation
	chars := 0 // code points before i
	for i := 0; i < len(text); {
		if text[i] != '[' {
			_, w := utf8.DecodeRuneInString(text[i:])
			i += w
			chars++
			continue
		}
		// A marker: '[' digits (',' ' '* digits)* ']'.
		j := i + 1
		var nums []int
		ok := false
		for j < len(text) {
			k := j
			n := 0
			for k < len(text) && text[k] >= '0' && text[k] <= '9' && k-j < 4 {
				n = n*10 + int(text[k]-'0')
				k++
			}
			if k == j {
				break
			}
			nums = append(nums, n)
			j = k
			for j < len(text) && text[j] == ' ' {
				j++
			}
			if j < len(text) && text[j] == ']' {
				ok = true
				j++
				break
			}
			if j < len(text) && text[j] == ',' {
				j++
				for j < len(text) && text[j] == ' ' {
					j++
				}
				continue
			}
			break
		}
		if !ok {
			i++
			chars++
			continue
		}
		width := utf8.RuneCountInString(text[i:j])
		for _, n := range nums {
			if c, found := cites[n]; found {
				out = append(out, annotation{Type: "url_citation", URLCitation: urlCitation{
					StartIndex: chars, EndIndex: chars + width, URL: c.url, Title: c.title}})
			}
		}
		chars += width
		i = j
	}
	return out
}

// annotateBody adds the citations of each choice's message content to its
// annotations (after any the upstream gave) in a chat completion body. It
// returns false, and the body should be kept, when there is nothing to add
// or the body is not a chat completion.
func annotateBody(body []byte, cites map[int]citation) ([]byte, bool) {
	choices, ok := jsonscan.Lookup(body, "choices")
	if !ok || len(choices) == 0 || choices[0] != '[' {
		return nil, false
	}
	changed := false
	out := []byte{'['}
	_, err := jsonscan.Elements(choices, func(choice []byte) bool {
		if len(out) > 1 {
			out = append(out, ',')
		}
		out = append(out, annotateChoice(choice, "message", "", cites, &changed)...)
		return true
	})
	if err != nil || !changed {
		return nil, false
	}
	out = append(out, ']')
	return jsonscan.Set(nil, body, "choices", out), true
}

// annotateChoice returns choice with the annotations of its field's
// content (with prefix, text streamed before, in front) added.
func annotateChoice(choice []byte, field, prefix string, cites map[int]citation, changed *bool) []byte {
	msg, ok := jsonscan.Lookup(choice, field)
	if !ok || len(msg) == 0 || msg[0] != '{' {
		return choice
	}
	text := prefix
	if raw, ok := jsonscan.Lookup(msg, "content"); ok {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			text += s
		}
	}
	anns := findCitations(text, cites)
	if len(anns) == 0 {
		return choice
	}
	var all []json.RawMessage
	if raw, ok := jsonscan.Lookup(msg, "annotations"); ok && !bytes.Equal(raw, []byte("null")) {
		_ = json.Unmarshal(raw, &all)
	}
	for _, a := range anns {
		b, _ := json.Marshal(a)
		all = append(all, b)
	}
	annRaw, _ := json.Marshal(all)
	*changed = true
	return jsonscan.Set(nil, choice, field, jsonscan.Set(nil, msg, "annotations", annRaw))
}

// streamCiter adds the citations to a stream: it keeps each choice's text
// as it passes, and puts the annotations of the whole text in the delta of
// the chunk that finishes the choice.
type streamCiter struct {
	cites map[int]citation
	text  map[int]*bytes.Buffer // by choice index, the content so far
}

func newStreamCiter(cites map[int]citation) *streamCiter {
	return &streamCiter{cites: cites, text: map[int]*bytes.Buffer{}}
}

type streamChunk struct {
	Choices []struct {
		Index int `json:"index"`
		Delta struct {
			Content *string `json:"content"`
		} `json:"delta"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
}

// OnEvent passes every event on, the finishing chunks with annotations.
func (c *streamCiter) OnEvent(_ *gateway.Exchange, dst, data []byte) ([]byte, error) {
	if len(data) == 0 || data[0] != '{' {
		return gateway.AppendEvent(dst, data), nil
	}
	var ch streamChunk
	if json.Unmarshal(data, &ch) != nil || len(ch.Choices) == 0 {
		return gateway.AppendEvent(dst, data), nil
	}
	finishing := map[int]string{}
	for _, choice := range ch.Choices {
		buf := c.text[choice.Index]
		if buf == nil {
			buf = new(bytes.Buffer)
			c.text[choice.Index] = buf
		}
		if choice.FinishReason != nil {
			finishing[choice.Index] = buf.String() // the text before this chunk's own content
		}
		if choice.Delta.Content != nil {
			buf.WriteString(*choice.Delta.Content)
		}
	}
	if len(finishing) == 0 {
		return gateway.AppendEvent(dst, data), nil
	}
	choices, _ := jsonscan.Lookup(data, "choices")
	changed := false
	out := []byte{'['}
	_, err := jsonscan.Elements(choices, func(choice []byte) bool {
		if len(out) > 1 {
			out = append(out, ',')
		}
		var head struct {
			Index int `json:"index"`
		}
		_ = json.Unmarshal(choice, &head)
		if prefix, ok := finishing[head.Index]; ok {
			choice = annotateChoice(choice, "delta", prefix, c.cites, &changed)
		}
		out = append(out, choice...)
		return true
	})
	if err != nil || !changed {
		return gateway.AppendEvent(dst, data), nil
	}
	out = append(out, ']')
	return gateway.AppendEvent(dst, jsonscan.Set(nil, data, "choices", out)), nil
}

// OnEnd holds nothing back.
func (c *streamCiter) OnEnd(_ *gateway.Exchange, dst []byte, _ error) []byte { return dst }
