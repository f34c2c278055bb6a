package jsonscan

import "testing"

const chatBody = `{"model":"llama-3.1-8b-instruct","messages":[{"role":"system","content":"You are a helpful assistant. Answer briefly and precisely."},{"role":"user","content":"What is the capital of France? Explain the history of the city in \"two\" sentences.\nThanks!"}],"stream":true,"stream_options":{"include_usage":true},"max_tokens":256,"temperature":0.7,"top_p":0.95,"user":"user-1234","metadata":{"team":"search","env":"prod"},"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}]}`

var sink []byte

func BenchmarkScan(b *testing.B) {
	body := []byte(chatBody)
	var f Fields
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if err := Scan(body, &f); err != nil {
			b.Fatal(err)
		}
	}
	sink = f.Model
}

func BenchmarkSet(b *testing.B) {
	body := []byte(chatBody)
	dst := make([]byte, 0, 2*len(body))
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		dst = Set(dst[:0], body, "model", []byte(`"backend-model-id"`))
	}
	sink = dst
}

func BenchmarkDelete(b *testing.B) {
	body := []byte(chatBody)
	dst := make([]byte, 0, 2*len(body))
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		dst = Delete(dst[:0], body, "metadata")
	}
	sink = dst
}

func BenchmarkMetadataValue(b *testing.B) {
	meta := []byte(`{"team":"search","env":"prod","owner":"x"}`)
	b.SetBytes(int64(len(meta)))
	b.ReportAllocs()
	for b.Loop() {
		sink, _ = MetadataValue(meta, "owner")
	}
}
