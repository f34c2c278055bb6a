package cache_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"switchyard/internal/spectest"
)

// TestOfficialSDKReadsHits: the official Go SDK reads a cached answer
// plain and as a replayed stream, as it reads the upstream's.
func TestOfficialSDKReadsHits(t *testing.T) {
	g := start(t, config(t, "cache", ""))
	c := openai.NewClient(option.WithBaseURL(g.url+"/v1/"), option.WithAPIKey("sk-acme-1"), option.WithMaxRetries(0))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	params := openai.ChatCompletionNewParams{
		Model:       "sim-chat",
		Messages:    []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Say something cacheable")},
		MaxTokens:   openai.Int(50),
		Temperature: openai.Float(0),
	}
	var h1, h2 http.Header
	var r1, r2 *http.Response
	first, err := c.Chat.Completions.New(ctx, params, option.WithResponseInto(&r1))
	if err != nil {
		t.Fatal(err)
	}
	h1 = r1.Header
	var raw []byte
	if _, err := c.Chat.Completions.New(ctx, params, option.WithResponseInto(&r2), option.WithResponseBodyInto(&raw)); err != nil {
		t.Fatal(err)
	}
	spectest.Check(t, "CreateChatCompletionResponse", raw)
	var second openai.ChatCompletion
	if err := second.UnmarshalJSON(raw); err != nil {
		t.Fatal(err)
	}
	h2 = r2.Header
	if h1.Get("X-Switchyard-Cache") != "miss" || h2.Get("X-Switchyard-Cache") != "hit" {
		t.Fatalf("outcomes %q, %q", h1.Get("X-Switchyard-Cache"), h2.Get("X-Switchyard-Cache"))
	}
	if second.Choices[0].Message.Content != first.Choices[0].Message.Content || second.ID != first.ID {
		t.Fatalf("hit %+v differs from the miss %+v", second, first)
	}

	params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
	var r3 *http.Response
	stream := c.Chat.Completions.NewStreaming(ctx, params, option.WithResponseInto(&r3))
	var acc openai.ChatCompletionAccumulator
	for stream.Next() {
		ch := stream.Current()
		spectest.Check(t, "CreateChatCompletionStreamResponse", []byte(ch.RawJSON()))
		acc.AddChunk(ch)
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if r3.Header.Get("X-Switchyard-Cache") != "hit" {
		t.Errorf("stream outcome %q", r3.Header.Get("X-Switchyard-Cache"))
	}
	if acc.Choices[0].Message.Content != first.Choices[0].Message.Content || acc.Choices[0].FinishReason != "stop" ||
		acc.Usage.TotalTokens != first.Usage.TotalTokens {
		t.Fatalf("replayed %+v, want the content, finish and usage of %+v", acc.ChatCompletion, first)
	}
}
