package sse

import (
	"bytes"
	"io"
	"testing"
)

const (
	chunkData  = `{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"llama","choices":[{"index":0,"delta":{"content":" token"},"finish_reason":null}],"usage":null}`
	chunkEvent = "data: " + chunkData + "\n\n"
	usageChunk = `{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"llama","choices":[],"usage":{"prompt_tokens":25,"completion_tokens":300,"total_tokens":325}}`
)

var (
	sinkBytes []byte
	sinkInt   int64
)

func BenchmarkReaderNext(b *testing.B) {
	stream := bytes.Repeat([]byte(chunkEvent), 100)
	src := bytes.NewReader(stream)
	r := NewReader(src, 0)
	b.SetBytes(int64(len(chunkEvent)))
	b.ReportAllocs()
	for b.Loop() {
		data, _, err := r.Next()
		if err == io.EOF {
			src.Reset(stream)
			r.Reset(src)
			continue
		}
		sinkBytes = data
	}
}

func BenchmarkAppendEvent(b *testing.B) {
	data := []byte(chunkData)
	dst := make([]byte, 0, 512)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		dst = AppendEvent(dst[:0], data)
	}
	sinkBytes = dst
}

func BenchmarkScanUsage(b *testing.B) {
	for _, bc := range []struct{ name, data string }{{"usage", usageChunk}, {"null", chunkData}} {
		b.Run(bc.name, func(b *testing.B) {
			data := []byte(bc.data)
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				p, _, _ := ScanUsage(data)
				sinkInt += p
			}
		})
	}
}
