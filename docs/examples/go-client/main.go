// A complete Go client of the gateway: one chat completion, then a stream
// with usage. README.md shows this file verbatim (main_test.go checks it).
package main

import (
	"context"
	"fmt"
	"log"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

func main() {
	ctx := context.Background()
	client := openai.NewClient(
		option.WithBaseURL("http://localhost:8080/v1/"),
		option.WithAPIKey("unused-without-keys"),
	)

	resp, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
		Model:     "sim-chat",
		Messages:  []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Hi")},
		MaxTokens: openai.Int(16),
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(resp.Choices[0].Message.Content)

	stream := client.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{
		Model:         "sim-chat",
		Messages:      []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Hi")},
		MaxTokens:     openai.Int(16),
		StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
	})
	for stream.Next() {
		chunk := stream.Current()
		if len(chunk.Choices) > 0 {
			fmt.Print(chunk.Choices[0].Delta.Content)
		} else {
			fmt.Printf("\n(%d prompt + %d completion tokens)\n", chunk.Usage.PromptTokens, chunk.Usage.CompletionTokens)
		}
	}
	if err := stream.Err(); err != nil {
		log.Fatal(err)
	}
}
