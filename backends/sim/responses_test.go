package sim

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/responses"

	"switchyard/internal/spectest"
)

// wireResponse is the part of a Response object the tests look at.
type wireResponse struct {
	ID                string  `json:"id"`
	Object            string  `json:"object"`
	CreatedAt         int64   `json:"created_at"`
	Status            string  `json:"status"`
	Model             string  `json:"model"`
	Instructions      *string `json:"instructions"`
	IncompleteDetails *struct {
		Reason string `json:"reason"`
	} `json:"incomplete_details"`
	Output []struct {
		Type    string `json:"type"`
		ID      string `json:"id"`
		Status  string `json:"status"`
		Role    string `json:"role"`
		Content []struct {
			Type string `json:"type"`
			Text string `json:"text"`
		} `json:"content"`
	} `json:"output"`
	Usage *struct {
		InputTokens        int `json:"input_tokens"`
		InputTokensDetails struct {
			CachedTokens int `json:"cached_tokens"`
		} `json:"input_tokens_details"`
		OutputTokens int `json:"output_tokens"`
		TotalTokens  int `json:"total_tokens"`
	} `json:"usage"`
	Metadata map[string]string `json:"metadata"`
	Store    bool              `json:"store"`
}

// text returns the response's one output text, failing the test if the
// output is not one assistant message with one output_text part.
func (r *wireResponse) text(t *testing.T) string {
	t.Helper()
	if len(r.Output) != 1 || r.Output[0].Type != "message" || r.Output[0].Role != "assistant" ||
		!strings.HasPrefix(r.Output[0].ID, "msg_") || len(r.Output[0].Content) != 1 || r.Output[0].Content[0].Type != "output_text" {
		t.Fatalf("output is not one assistant message with one output_text part: %+v", r.Output)
	}
	return r.Output[0].Content[0].Text
}

func readBody(t *testing.T, r *http.Response) []byte {
	t.Helper()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// createResponse posts a plain request, checks the answer against the spec
// and decodes it.
func createResponse(t *testing.T, url, body string) (*wireResponse, []byte) {
	t.Helper()
	r := post(t, url, "/v1/responses", body)
	raw := readBody(t, r)
	if r.StatusCode != 200 || r.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("status %d, content-type %q: %s", r.StatusCode, r.Header.Get("Content-Type"), raw)
	}
	spectest.Check(t, "Response", raw)
	var v wireResponse
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(v.ID, "resp_") || v.Object != "response" || v.CreatedAt == 0 || v.Model != "m" || v.Usage == nil {
		t.Fatalf("response lacks id/object/created_at/model/usage: %s", raw)
	}
	return &v, raw
}

func TestResponsesPlain(t *testing.T) {
	_, url := startServer(t, nil)
	t.Run("string input", func(t *testing.T) {
		// No max_output_tokens: the default limit (256) counts as a
		// natural stop, so the response completes.
		v, _ := createResponse(t, url, `{"model":"m","input":"Tell me a story about routers.","metadata":{"k":"v"},"temperature":0.5}`)
		if v.Status != "completed" || v.IncompleteDetails != nil || v.Instructions != nil || !v.Store || v.Metadata["k"] != "v" {
			t.Errorf("status %q, incomplete_details %+v, instructions %v, store %v, metadata %v", v.Status, v.IncompleteDetails, v.Instructions, v.Store, v.Metadata)
		}
		text := v.text(t)
		if v.Output[0].Status != "completed" {
			t.Errorf("message status %q", v.Output[0].Status)
		}
		u := v.Usage
		wantIn := CountTokens("Tell me a story about routers.") + 3
		if u.InputTokens != wantIn || u.OutputTokens != 256 || CountTokens(text) != 256 || u.TotalTokens != u.InputTokens+u.OutputTokens {
			t.Errorf("usage %+v for a %d-token text, want %d input and 256 output tokens", *u, CountTokens(text), wantIn)
		}
	})
	t.Run("message list", func(t *testing.T) {
		body := `{"model":"m","instructions":"Be brief.","max_output_tokens":30,"input":[
			{"role":"user","content":"Tell me a story about routers."},
			{"type":"message","role":"assistant","content":[{"type":"output_text","text":"Once upon a time."}]},
			{"role":"user","content":[{"type":"input_text","text":"Go on."},{"type":"input_image","image_url":"https://example.com/x.png"}]}]}`
		v, _ := createResponse(t, url, body)
		if v.Instructions == nil || *v.Instructions != "Be brief." {
			t.Errorf("instructions %v", v.Instructions)
		}
		want := CountTokens("Be brief.") + CountTokens("Tell me a story about routers.") + CountTokens("Once upon a time.") + CountTokens("Go on.") + 2*4 + 1
		if v.Usage.InputTokens != want {
			t.Errorf("input tokens %d, want %d", v.Usage.InputTokens, want)
		}
		if n := CountTokens(v.text(t)); n != 30 || v.Usage.OutputTokens != 30 {
			t.Errorf("text has %d tokens, usage %d; want 30", n, v.Usage.OutputTokens)
		}
	})
	t.Run("same text as chat", func(t *testing.T) {
		// A response renders its prompt as chat does (instructions as a
		// system message), so it generates the same text.
		v, _ := createResponse(t, url, `{"model":"m","instructions":"Be brief.","input":"hello there","max_output_tokens":12}`)
		r := post(t, url, "/v1/chat/completions", `{"model":"m","max_tokens":12,"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"hello there"}]}`)
		var c struct {
			Choices []struct {
				Message struct{ Content string } `json:"message"`
			} `json:"choices"`
			Usage struct {
				PromptTokens int `json:"prompt_tokens"`
			} `json:"usage"`
		}
		if err := json.NewDecoder(r.Body).Decode(&c); err != nil {
			t.Fatal(err)
		}
		if len(c.Choices) != 1 || c.Choices[0].Message.Content != v.text(t) || c.Usage.PromptTokens != v.Usage.InputTokens {
			t.Errorf("chat %+v; response %q with %d input tokens", c, v.text(t), v.Usage.InputTokens)
		}
	})
}

func TestResponsesIncomplete(t *testing.T) {
	_, url := startServer(t, map[string]string{"output-len": "50"})
	v, _ := createResponse(t, url, `{"model":"m","input":"hi","max_output_tokens":7}`)
	if v.Status != "incomplete" || v.IncompleteDetails == nil || v.IncompleteDetails.Reason != "max_output_tokens" {
		t.Fatalf("status %q, incomplete_details %+v; want incomplete for max_output_tokens", v.Status, v.IncompleteDetails)
	}
	if n := CountTokens(v.text(t)); n != 7 || v.Usage.OutputTokens != 7 || v.Output[0].Status != "incomplete" {
		t.Errorf("text of %d tokens, usage %d, message status %q", n, v.Usage.OutputTokens, v.Output[0].Status)
	}
	// Stopping by itself before the limit completes the response.
	v, _ = createResponse(t, url, `{"model":"m","input":"hi","max_output_tokens":100}`)
	if v.Status != "completed" || v.Usage.OutputTokens != 50 || v.Output[0].Status != "completed" {
		t.Errorf("status %q, output tokens %d, message status %q; want completed after 50", v.Status, v.Usage.OutputTokens, v.Output[0].Status)
	}
}

// sseEvent is one event of a streamed response.
type sseEvent struct {
	name string
	data []byte
}

// readEvents reads an SSE body of `event:` and `data:` pairs.
func readEvents(t *testing.T, body io.Reader) []sseEvent {
	t.Helper()
	var evs []sseEvent
	var cur sseEvent
	sc := bufio.NewScanner(body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if cur.name != "" || cur.data != nil {
				evs = append(evs, cur)
			}
			cur = sseEvent{}
		case strings.HasPrefix(line, "event: "):
			cur.name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			if cur.data != nil {
				t.Fatalf("event %q has two data lines", cur.name)
			}
			cur.data = []byte(strings.TrimPrefix(line, "data: "))
		default:
			t.Fatalf("unexpected SSE line %q", line)
		}
	}
	if cur.name != "" || cur.data != nil {
		t.Fatalf("stream ends inside an event: %q", cur.name)
	}
	return evs
}

// streamSchemas maps the event types the simulator sends to their schemas.
var streamSchemas = map[string]string{
	"response.created":            "ResponseCreatedEvent",
	"response.in_progress":        "ResponseInProgressEvent",
	"response.output_item.added":  "ResponseOutputItemAddedEvent",
	"response.content_part.added": "ResponseContentPartAddedEvent",
	"response.output_text.delta":  "ResponseTextDeltaEvent",
	"response.output_text.done":   "ResponseTextDoneEvent",
	"response.content_part.done":  "ResponseContentPartDoneEvent",
	"response.output_item.done":   "ResponseOutputItemDoneEvent",
	"response.completed":          "ResponseCompletedEvent",
	"response.incomplete":         "ResponseIncompleteEvent",

	"response.function_call_arguments.delta": "ResponseFunctionCallArgumentsDeltaEvent",
	"response.function_call_arguments.done":  "ResponseFunctionCallArgumentsDoneEvent",
}

// checkStream checks a streamed response of n tokens event by event and
// returns the final response's JSON and the concatenated deltas.
func checkStream(t *testing.T, evs []sseEvent, n int, final string) ([]byte, string) {
	t.Helper()
	want := []string{"response.created", "response.in_progress", "response.output_item.added", "response.content_part.added"}
	for range n {
		want = append(want, "response.output_text.delta")
	}
	want = append(want, "response.output_text.done", "response.content_part.done", "response.output_item.done", final)
	if len(evs) != len(want) {
		names := make([]string, len(evs))
		for i, e := range evs {
			names[i] = e.name
		}
		t.Fatalf("%d events, want %d:\n%s", len(evs), len(want), strings.Join(names, "\n"))
	}
	var deltas strings.Builder
	var respID, itemID string
	var finalResp []byte
	for i, e := range evs {
		var d struct {
			Type           string          `json:"type"`
			SequenceNumber *int            `json:"sequence_number"`
			ItemID         string          `json:"item_id"`
			OutputIndex    *int            `json:"output_index"`
			ContentIndex   *int            `json:"content_index"`
			Delta          string          `json:"delta"`
			Text           string          `json:"text"`
			Response       json.RawMessage `json:"response"`
			Item           struct {
				ID     string `json:"id"`
				Status string `json:"status"`
			} `json:"item"`
		}
		if err := json.Unmarshal(e.data, &d); err != nil {
			t.Fatalf("event %d: %v: %s", i, err, e.data)
		}
		if e.name != want[i] || d.Type != e.name {
			t.Fatalf("event %d is %q with data type %q, want %q", i, e.name, d.Type, want[i])
		}
		if d.SequenceNumber == nil || *d.SequenceNumber != i {
			t.Errorf("event %d (%s) has sequence_number %v, want %d", i, e.name, d.SequenceNumber, i)
		}
		spectest.Check(t, streamSchemas[e.name], e.data)
		switch e.name {
		case "response.created", "response.in_progress", final:
			var r wireResponse
			if err := json.Unmarshal(d.Response, &r); err != nil {
				t.Fatal(err)
			}
			if respID == "" {
				respID = r.ID
			}
			if r.ID != respID || !strings.HasPrefix(r.ID, "resp_") {
				t.Errorf("event %d: response id %q, want %q", i, r.ID, respID)
			}
			if e.name == final {
				finalResp = d.Response
			} else if r.Status != "in_progress" || len(r.Output) != 0 || r.Usage != nil {
				t.Errorf("event %d: want an in_progress response without output or usage: %s", i, d.Response)
			}
		case "response.output_item.added":
			itemID = d.Item.ID
			if d.Item.Status != "in_progress" || !strings.HasPrefix(itemID, "msg_") {
				t.Errorf("item added: %s", e.data)
			}
		case "response.output_text.delta":
			if d.Delta == "" {
				t.Errorf("event %d: empty delta", i)
			}
			deltas.WriteString(d.Delta)
		case "response.output_text.done":
			if d.Text != deltas.String() {
				t.Errorf("done text %q, deltas %q", d.Text, deltas.String())
			}
		}
		if d.ItemID != "" && d.ItemID != itemID || e.name == "response.output_item.done" && d.Item.ID != itemID {
			t.Errorf("event %d names item %q/%q, want %q", i, d.ItemID, d.Item.ID, itemID)
		}
		if d.OutputIndex != nil && *d.OutputIndex != 0 || d.ContentIndex != nil && *d.ContentIndex != 0 {
			t.Errorf("event %d: output_index %v content_index %v", i, *d.OutputIndex, d.ContentIndex)
		}
	}
	return finalResp, deltas.String()
}

func TestResponsesStream(t *testing.T) {
	_, url := startServer(t, nil)
	r := post(t, url, "/v1/responses", `{"model":"m","input":"Tell me a story about routers.","max_output_tokens":9,"stream":true}`)
	if r.StatusCode != 200 || r.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("status %d, content-type %q", r.StatusCode, r.Header.Get("Content-Type"))
	}
	raw := readBody(t, r)
	if strings.Contains(string(raw), "[DONE]") {
		t.Error("a Responses stream ends with [DONE]")
	}
	final, text := checkStream(t, readEvents(t, strings.NewReader(string(raw))), 9, "response.incomplete")
	spectest.Check(t, "Response", final)
	var v wireResponse
	if err := json.Unmarshal(final, &v); err != nil {
		t.Fatal(err)
	}
	if v.Status != "incomplete" || v.text(t) != text || v.Usage.OutputTokens != 9 || CountTokens(text) != 9 {
		t.Errorf("final response %s; deltas %q", final, text)
	}
	// The stored response is the final one of the stream.
	got := get(t, url+"/v1/responses/"+v.ID)
	if got.StatusCode != 200 {
		t.Fatalf("GET status %d", got.StatusCode)
	}
	if b := readBody(t, got); string(b) != string(final) {
		t.Errorf("GET:\n%s\nstream:\n%s", b, final)
	}
	// The same prompt, plain, generates the same text.
	p, _ := createResponse(t, url, `{"model":"m","input":"Tell me a story about routers.","max_output_tokens":9}`)
	if p.text(t) != text {
		t.Errorf("plain %q, streamed %q", p.text(t), text)
	}

	t.Run("completed", func(t *testing.T) {
		r := post(t, url, "/v1/responses", `{"model":"m","input":"hi","stream":true}`)
		// No max_output_tokens: the default limit counts as a natural stop.
		final, _ := checkStream(t, readEvents(t, r.Body), 256, "response.completed")
		var v wireResponse
		if err := json.Unmarshal(final, &v); err != nil {
			t.Fatal(err)
		}
		if v.Status != "completed" || v.Output[0].Status != "completed" {
			t.Errorf("final response %s", final)
		}
	})
}

func get(t *testing.T, url string) *http.Response {
	t.Helper()
	r, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Body.Close() })
	return r
}

func TestResponsesGet(t *testing.T) {
	s, url := startServer(t, nil)
	v, raw := createResponse(t, url, `{"model":"m","input":"hi","max_output_tokens":5}`)
	r := get(t, url+"/v1/responses/"+v.ID)
	if b := readBody(t, r); r.StatusCode != 200 || string(b) != string(raw) {
		t.Fatalf("GET: status %d\n%s\nwant\n%s", r.StatusCode, b, raw)
	}

	r = get(t, url+"/v1/responses/resp_unknown")
	if r.StatusCode != 404 {
		t.Fatalf("unknown id: status %d", r.StatusCode)
	}
	body := readBody(t, r)
	spectest.Check(t, "ErrorResponse", body)
	if !strings.Contains(string(body), "resp_unknown") {
		t.Errorf("error body does not name the id: %s", body)
	}

	nostore, _ := createResponse(t, url, `{"model":"m","input":"hi","max_output_tokens":5,"store":false}`)
	if nostore.Store {
		t.Error("store: false echoed as true")
	}
	if r := get(t, url+"/v1/responses/"+nostore.ID); r.StatusCode != 404 {
		t.Errorf("a response with store: false was stored: status %d", r.StatusCode)
	}

	req, _ := http.NewRequest("DELETE", url+"/v1/responses/"+v.ID, nil)
	del, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b := readBody(t, del)
	del.Body.Close()
	if del.StatusCode != 200 || !strings.Contains(string(b), `"deleted":true`) {
		t.Errorf("DELETE: status %d: %s", del.StatusCode, b)
	}
	if r := get(t, url+"/v1/responses/"+v.ID); r.StatusCode != 404 {
		t.Errorf("GET after DELETE: status %d", r.StatusCode)
	}
	if n := s.store.len(); n != 0 {
		t.Errorf("%d responses stored, want 0", n)
	}
	if r := post(t, url, "/v1/responses/"+v.ID, `{}`); r.StatusCode != 405 || r.Header.Get("Allow") != "GET, DELETE" {
		t.Errorf("POST on a response: status %d, allow %q", r.StatusCode, r.Header.Get("Allow"))
	}
}

func TestResponseStoreBounds(t *testing.T) {
	st := newResponseStore(3, 100)
	for i := range 5 {
		st.put(fmt.Sprint("r", i), []byte("0123456789"))
	}
	for i, want := range []bool{false, false, true, true, true} {
		if _, ok := st.get(fmt.Sprint("r", i)); ok != want {
			t.Errorf("r%d stored %v, want %v", i, ok, want)
		}
	}
	// The byte bound evicts the oldest until the new one fits.
	st.put("big", make([]byte, 95))
	if _, ok := st.get("big"); !ok || st.len() != 1 || st.bytes != 95 {
		t.Errorf("after a 95-byte put: %d stored, %d bytes", st.len(), st.bytes)
	}
	st.put("huge", make([]byte, 101))
	if _, ok := st.get("huge"); ok {
		t.Error("a body over the byte bound was stored")
	}
	none := newResponseStore(0, 100)
	if none.put("x", nil); none.len() != 0 {
		t.Error("a zero-sized store stored")
	}
}

func TestResponsesErrors(t *testing.T) {
	_, url := startServer(t, nil)
	cases := []struct {
		name, body string
		status     int
		param      any
	}{
		{"unknown model", `{"model":"nope","input":"x"}`, 404, "model"},
		{"no input", `{"model":"m"}`, 400, "input"},
		{"empty input", `{"model":"m","input":[]}`, 400, "input"},
		{"bad input type", `{"model":"m","input":3}`, 400, "input"},
		{"no role", `{"model":"m","input":[{"content":"x"}]}`, 400, "input[0].role"},
		{"bad role", `{"model":"m","input":[{"role":"robot","content":"x"}]}`, 400, "input[0].role"},
		{"bad content", `{"model":"m","input":[{"role":"user","content":3}]}`, 400, "input[0].content"},
		{"zero max_output_tokens", `{"model":"m","input":"x","max_output_tokens":0}`, 400, "max_output_tokens"},
		{"too long", `{"model":"m","input":"x","max_output_tokens":200000}`, 400, "max_output_tokens"},
		{"bad metadata", `{"model":"m","input":"x","metadata":{"k":1}}`, 400, "metadata"},
		{"bad tools", `{"model":"m","input":"x","tools":{}}`, 400, "tools"},
		{"empty previous id", `{"model":"m","input":"x","previous_response_id":""}`, 400, "previous_response_id"},
		{"background", `{"model":"m","input":"x","background":true}`, 400, "background"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := post(t, url, "/v1/responses", c.body)
			if r.StatusCode != c.status {
				t.Fatalf("status %d, want %d", r.StatusCode, c.status)
			}
			if e := errorBody(t, r); e["param"] != c.param {
				t.Errorf("param %v, want %v (%v)", e["param"], c.param, e["message"])
			}
		})
	}
	// previous_response_id is accepted without input, and echoed.
	v, raw := createResponse(t, url, `{"model":"m","previous_response_id":"resp_elsewhere","max_output_tokens":3}`)
	if v.Usage.OutputTokens != 3 || !strings.Contains(string(raw), `"previous_response_id":"resp_elsewhere"`) {
		t.Errorf("response %s", raw)
	}
}

func TestResponsesFaults(t *testing.T) {
	_, url := startServer(t, map[string]string{"stall": "20ms"})
	for _, f := range []string{"500", "429"} {
		if r := post(t, url, "/v1/responses", `{"model":"m","input":"x"}`, "x-sim-fault", f); fmt.Sprint(r.StatusCode) != f {
			t.Errorf("fault %s: status %d", f, r.StatusCode)
		}
	}
	for _, f := range []string{"stall", "slow"} {
		if r := post(t, url, "/v1/responses", `{"model":"m","input":"x","max_output_tokens":3}`, "x-sim-fault", f); r.StatusCode != 200 {
			t.Errorf("fault %s: status %d", f, r.StatusCode)
		}
	}
	r := post(t, url, "/v1/responses", `{"model":"m","input":"x","max_output_tokens":10,"stream":true}`, "x-sim-fault", "drop-mid-stream")
	body, err := io.ReadAll(r.Body)
	if err == nil {
		t.Error("reading a dropped stream succeeded")
	}
	if n := strings.Count(string(body), "event: response.output_text.delta\n"); n != 5 {
		t.Errorf("%d deltas before the drop, want 5:\n%s", n, body)
	}
	if strings.Contains(string(body), "response.completed") || strings.Contains(string(body), "response.incomplete") {
		t.Error("a dropped stream has its final event")
	}
	r = post(t, url, "/v1/responses", `{"model":"m","input":"x","max_output_tokens":10}`, "x-sim-fault", "drop-mid-stream")
	if _, err := io.ReadAll(r.Body); err == nil {
		t.Error("reading a dropped body succeeded")
	}
}

func TestResponsesMetrics(t *testing.T) {
	_, url := startServer(t, nil)
	createResponse(t, url, `{"model":"m","input":"hello world","max_output_tokens":4}`)
	text := string(readBody(t, get(t, url+"/metrics")))
	for _, want := range []string{
		`vllm:generation_tokens_total{model_name="m"} 4`,
		fmt.Sprintf(`vllm:prompt_tokens_total{model_name="m"} %d`, CountTokens("hello world")+3),
		`vllm:request_success_total{model_name="m",finished_reason="length"} 1`,
		`vllm:e2e_request_latency_seconds_count{model_name="m"} 1`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func TestResponsesSDK(t *testing.T) {
	_, url := startServer(t, nil)
	c := sdkClient(url)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	prompt := "Tell me a story about routers."
	wantIn := int64(CountTokens("Be brief.") + CountTokens(prompt) + 5)

	r, err := c.Responses.New(ctx, responses.ResponseNewParams{
		Model:           "m",
		Instructions:    openai.String("Be brief."),
		Input:           responses.ResponseNewParamsInputUnion{OfString: openai.String(prompt)},
		MaxOutputTokens: openai.Int(20),
	})
	if err != nil {
		t.Fatal(err)
	}
	text := r.OutputText()
	if r.Status != responses.ResponseStatusIncomplete || r.IncompleteDetails.Reason != "max_output_tokens" || CountTokens(text) != 20 {
		t.Errorf("status %q (%q), %d-token text: %s", r.Status, r.IncompleteDetails.Reason, CountTokens(text), r.RawJSON())
	}
	if r.Usage.InputTokens != wantIn || r.Usage.OutputTokens != 20 || r.Usage.TotalTokens != wantIn+20 {
		t.Errorf("usage %+v, want %d input and 20 output tokens", r.Usage, wantIn)
	}
	got, err := c.Responses.Get(ctx, r.ID, responses.ResponseGetParams{})
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != r.ID || got.OutputText() != text {
		t.Errorf("Get: %s", got.RawJSON())
	}

	stream := c.Responses.NewStreaming(ctx, responses.ResponseNewParams{
		Model:        "m",
		Instructions: openai.String("Be brief."),
		Input: responses.ResponseNewParamsInputUnion{OfInputItemList: responses.ResponseInputParam{
			responses.ResponseInputItemParamOfMessage(prompt, responses.EasyInputMessageRoleUser),
		}},
		MaxOutputTokens: openai.Int(20),
	})
	var deltas strings.Builder
	var final responses.Response
	events, seq := 0, int64(0)
	for stream.Next() {
		ev := stream.Current()
		if ev.SequenceNumber != seq {
			t.Errorf("event %q has sequence_number %d, want %d", ev.Type, ev.SequenceNumber, seq)
		}
		seq++
		events++
		switch ev.Type {
		case "response.output_text.delta":
			deltas.WriteString(ev.Delta)
		case "response.completed", "response.incomplete":
			final = ev.Response
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if events != 4+20+4 || deltas.String() != text || final.OutputText() != text {
		t.Errorf("%d events; deltas %q; final %q; want 28 events and %q", events, deltas.String(), final.OutputText(), text)
	}
	if final.Usage.InputTokens != wantIn || final.Usage.OutputTokens != 20 || final.Status != responses.ResponseStatusIncomplete {
		t.Errorf("final response: %s", final.RawJSON())
	}
}
