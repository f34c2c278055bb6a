package spectest

import "testing"

func BenchmarkValidateStreamChunk(b *testing.B) {
	s := spec(b)
	body := []byte(streamChunk)
	if err := s.Validate("CreateChatCompletionStreamResponse", body); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if err := s.Validate("CreateChatCompletionStreamResponse", body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkValidateChatResponse(b *testing.B) {
	s := spec(b)
	body := []byte(chatResponse)
	if err := s.Validate("CreateChatCompletionResponse", body); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if err := s.Validate("CreateChatCompletionResponse", body); err != nil {
			b.Fatal(err)
		}
	}
}
