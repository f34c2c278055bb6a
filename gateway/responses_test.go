package gateway_test

import (
	"context"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"

	"switchyard/gateway"
	"switchyard/internal/spectest"
)

// TestResponsesAPI: the Responses API passes through the gateway, routed by
// model, plain and streamed (event: lines and typed events kept), and
// GET /v1/responses/{id} goes back to the backend that made it, for the
// key that made it only.
func TestResponsesAPI(t *testing.T) {
	g := startGateway(t, simConfig(`keys:
  - {id: a, tenant: t, sha256: `+gateway.HashKey("sk-a")+`}
  - {id: b, tenant: t, sha256: `+gateway.HashKey("sk-b")+`}
`))
	ctx := context.Background()
	client := openai.NewClient(option.WithBaseURL(g.url+"/v1/"), option.WithAPIKey("sk-a"), option.WithMaxRetries(0))
	r, err := client.Responses.New(ctx, responses.ResponseNewParams{
		Model:           "sim-chat",
		Input:           responses.ResponseNewParamsInputUnion{OfString: openai.String("Hello, responses")},
		MaxOutputTokens: openai.Int(6),
	})
	if err != nil {
		t.Fatal(err)
	}
	spectest.Check(t, "Response", []byte(r.RawJSON()))
	if r.Usage.OutputTokens != 6 || r.OutputText() == "" {
		t.Errorf("plain response: %s", r.RawJSON())
	}
	got, err := client.Responses.Get(ctx, r.ID, responses.ResponseGetParams{})
	if err != nil || got.ID != r.ID || got.OutputText() != r.OutputText() {
		t.Fatalf("GET by the key that made it: %v %s", err, got.RawJSON())
	}
	other := openai.NewClient(option.WithBaseURL(g.url+"/v1/"), option.WithAPIKey("sk-b"), option.WithMaxRetries(0))
	if _, err := other.Responses.Get(ctx, r.ID, responses.ResponseGetParams{}); err == nil || apiError(t, err).StatusCode != 404 {
		t.Errorf("GET by another key: %v, want 404", err)
	}
	if _, err := client.Responses.Get(ctx, "resp_unknown", responses.ResponseGetParams{}); err == nil || apiError(t, err).StatusCode != 404 {
		t.Errorf("GET of an unknown id: %v, want 404", err)
	}

	stream := client.Responses.NewStreaming(ctx, responses.ResponseNewParams{
		Model:           "sim-chat",
		Input:           responses.ResponseNewParamsInputUnion{OfString: openai.String("Stream, responses")},
		MaxOutputTokens: openai.Int(5),
	})
	var deltas strings.Builder
	var final responses.Response
	seq := int64(0)
	for stream.Next() {
		ev := stream.Current()
		if ev.SequenceNumber != seq {
			t.Errorf("event %s: sequence %d, want %d", ev.Type, ev.SequenceNumber, seq)
		}
		seq++
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
	if final.ID == "" || deltas.String() != final.OutputText() || final.Usage.OutputTokens != 5 {
		t.Errorf("stream: deltas %q, final %s", deltas.String(), final.RawJSON())
	}
	if got, err := client.Responses.Get(ctx, final.ID, responses.ResponseGetParams{}); err != nil || got.OutputText() != final.OutputText() {
		t.Errorf("GET of a streamed response: %v", err)
	}
	// Raw wire: the event: lines pass through, and there is no [DONE].
	code, hdr, b := post(t, g.url+"/v1/responses", `{"model":"sim-chat","input":"raw","max_output_tokens":2,"stream":true}`, "Authorization", "Bearer sk-a")
	if code != 200 || !strings.Contains(string(b), "event: response.created\n") || strings.Contains(string(b), "[DONE]") || strings.Contains(string(b), `data: {"error"`) {
		t.Errorf("raw stream %d %v:\n%s", code, hdr, b)
	}
}
