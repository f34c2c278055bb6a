package retrieval

import (
	"encoding/json"
	"strings"
	"testing"

	"switchyard/internal/retrieve"
)

var testCites = map[int]citation{
	1: {url: "http://gw/v1/files/file-a/content", title: "A"},
	2: {url: "https://example.com/b", title: "B > intro"},
}

func TestFindCitations(t *testing.T) {
	type span struct {
		start, end int
		url        string
	}
	cases := []struct {
		text string
		want []span
	}{
		{"No markers.", nil},
		{"Fact [1].", []span{{5, 8, testCites[1].url}}},
		{"Two [1][2].", []span{{4, 7, testCites[1].url}, {7, 10, testCites[2].url}}},
		{"List [1, 2] here", []span{{5, 11, testCites[1].url}, {5, 11, testCites[2].url}}},
		{"Unknown [3] and [x] and [] and [1", nil},
		{"é ü [2]", []span{{4, 7, testCites[2].url}}}, // code points, not bytes
		{"[12345] is too long", nil},
		{"[ 1]", nil},
	}
	for _, c := range cases {
		got := findCitations(c.text, testCites)
		if len(got) != len(c.want) {
			t.Errorf("%q: %d citations %+v, want %d", c.text, len(got), got, len(c.want))
			continue
		}
		for i, w := range c.want {
			g := got[i].URLCitation
			if got[i].Type != "url_citation" || g.StartIndex != w.start || g.EndIndex != w.end || g.URL != w.url {
				t.Errorf("%q: citation %d = %+v, want %+v", c.text, i, got[i], w)
			}
		}
	}
}

func FuzzFindCitations(f *testing.F) {
	for _, s := range []string{"a [1] b", "[1, 2][2]", "[", "[9999]", "é[1]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n := len([]rune(s))
		for _, a := range findCitations(s, testCites) {
			u := a.URLCitation
			if u.StartIndex < 0 || u.EndIndex > n || u.StartIndex >= u.EndIndex {
				t.Fatalf("%q: span [%d, %d) outside %d characters", s, u.StartIndex, u.EndIndex, n)
			}
			if r := []rune(s); r[u.StartIndex] != '[' || r[u.EndIndex-1] != ']' {
				t.Fatalf("%q: span [%d, %d) is not a marker", s, u.StartIndex, u.EndIndex)
			}
		}
	})
}

func TestAnnotateBody(t *testing.T) {
	body := `{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Yes [2].","refusal":null,"annotations":[]},"finish_reason":"stop"},{"index":1,"message":{"role":"assistant","content":"none"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}`
	out, ok := annotateBody([]byte(body), testCites)
	if !ok {
		t.Fatal("nothing added")
	}
	var r struct {
		Choices []struct {
			Message struct {
				Content     string       `json:"content"`
				Annotations []annotation `json:"annotations"`
			} `json:"message"`
		} `json:"choices"`
		Usage map[string]int `json:"usage"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if a := r.Choices[0].Message.Annotations; len(a) != 1 || a[0].URLCitation.URL != testCites[2].url || a[0].URLCitation.StartIndex != 4 || a[0].URLCitation.EndIndex != 7 {
		t.Errorf("annotations %+v", a)
	}
	if r.Choices[1].Message.Annotations != nil || r.Usage["total_tokens"] != 3 || r.Choices[0].Message.Content != "Yes [2]." {
		t.Errorf("the rest changed: %s", out)
	}
	if _, ok := annotateBody([]byte(`{"choices":[{"message":{"content":"plain"}}]}`), testCites); ok {
		t.Error("a body without markers was rewritten")
	}
	if _, ok := annotateBody([]byte(`{"error":{"message":"x"}}`), testCites); ok {
		t.Error("an error body was rewritten")
	}
}

func TestStreamCiter(t *testing.T) {
	c := newStreamCiter(testCites)
	events := []string{
		`{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}`,
		`{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"It is [1"},"finish_reason":null}]}`,
		`{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"]."},"finish_reason":null}]}`,
		`{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`,
		`{"id":"c","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":3,"total_tokens":4}}`,
		`[DONE]`,
	}
	var out []string
	for _, e := range events {
		b, err := c.OnEvent(nil, nil, []byte(e))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, strings.TrimSuffix(strings.TrimPrefix(string(b), "data: "), "\n\n"))
	}
	for i := range events {
		if i != 3 && out[i] != events[i] {
			t.Errorf("event %d changed: %s", i, out[i])
		}
	}
	var fin struct {
		Choices []struct {
			Delta struct {
				Annotations []annotation `json:"annotations"`
			} `json:"delta"`
			FinishReason string `json:"finish_reason"`
		} `json:"choices"`
	}
	if err := json.Unmarshal([]byte(out[3]), &fin); err != nil {
		t.Fatalf("%v: %s", err, out[3])
	}
	a := fin.Choices[0].Delta.Annotations
	if len(a) != 1 || a[0].URLCitation.StartIndex != 6 || a[0].URLCitation.EndIndex != 9 || fin.Choices[0].FinishReason != "stop" {
		t.Errorf("final delta %s", out[3])
	}
}

func TestPackSources(t *testing.T) {
	hit := func(id string, n int) retrieve.Hit {
		return retrieve.Hit{ChunkID: id, DocID: id, Text: strings.Repeat("w ", n/2)}
	}
	hits := []retrieve.Hit{hit("a", 400), hit("b", 400), hit("c", 400)}
	if got := packSources(hits, 220); len(got) != 2 || got[1].n != 2 {
		t.Errorf("220 tokens: %d sources", len(got))
	}
	got := packSources([]retrieve.Hit{hit("big", 4000)}, 100)
	if len(got) != 1 || retrieve.EstimateTokens(got[0].text) > 100 {
		t.Errorf("one big hit: %d sources, %d tokens", len(got), retrieve.EstimateTokens(got[0].text))
	}
	if got := packSources(nil, 100); len(got) != 0 {
		t.Errorf("no hits: %d sources", len(got))
	}
}

func TestLastUserTurn(t *testing.T) {
	msgs := []json.RawMessage{
		json.RawMessage(`{"role":"system","content":"s"}`),
		json.RawMessage(`{"role":"user","content":"first"}`),
		json.RawMessage(`{"role":"assistant","content":"a"}`),
		json.RawMessage(`{"role":"user","content":[{"type":"text","text":"second"},{"type":"image_url","image_url":{"url":"x"}},{"type":"text","text":"part"}]}`),
		json.RawMessage(`{"role":"tool","content":"t"}`),
	}
	i, text := lastUserTurn(msgs)
	if i != 3 || text != "second\npart" {
		t.Errorf("lastUserTurn = %d %q", i, text)
	}
	if i, _ := lastUserTurn(msgs[:1]); i != -1 {
		t.Errorf("no user turn: %d", i)
	}
}
