//go:build !race

package sse

import (
	"bytes"
	"testing"
)

func TestZeroAllocs(t *testing.T) {
	stream := bytes.Repeat([]byte(chunkEvent), 50)
	src := bytes.NewReader(stream)
	r := NewReader(src, 0)
	dst := make([]byte, 0, 1024)
	usage := []byte(usageChunk)
	cases := map[string]func(){
		"Next": func() {
			if _, _, err := r.Next(); err != nil {
				src.Reset(stream)
				r.Reset(src)
			}
		},
		"AppendEvent":      func() { dst = AppendEvent(dst[:0], []byte(`{"a":1}`)) },
		"AppendErrorEvent": func() { dst = AppendErrorEvent(dst[:0], "upstream failed", "server_error", "") },
		"ScanUsage":        func() { _, _, _ = ScanUsage(usage) },
		"ScanUsageNone":    func() { _, _, _ = ScanUsage([]byte(chunkData)) },
	}
	cases["Next"]() // allocate the buffer once
	for name, fn := range cases {
		if n := testing.AllocsPerRun(200, fn); n != 0 {
			t.Errorf("%s: %v allocs/op, want 0", name, n)
		}
	}
}
