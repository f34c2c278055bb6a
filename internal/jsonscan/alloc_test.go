//go:build !race

package jsonscan

import "testing"

func TestZeroAllocs(t *testing.T) {
	body := []byte(chatBody)
	escaped := []byte(`{"model":"gpt\u002d4o","user":"\u0075","messages":[],"a-very-long-unknown-key-longer-than-thirty-two-bytes":1,"stre\u0061m":true}`)
	meta := []byte(`{"team":"search","env":"prod"}`)
	mv := &MetadataView{Raw: meta}
	var f Fields
	_ = Scan(escaped, &f) // warm the scratch buffer
	dst := make([]byte, 0, 4096)
	cases := map[string]func(){
		"Scan":          func() { _ = Scan(body, &f) },
		"ScanEscaped":   func() { _ = Scan(escaped, &f) },
		"MetadataValue": func() { _, _ = MetadataValue(meta, "env") },
		"MetadataView":  func() { _, _ = mv.Metadata("team") },
		"Set":           func() { dst = Set(dst[:0], body, "model", []byte(`"other"`)) },
		"Delete":        func() { dst = Delete(dst[:0], body, "user") },
		"AppendString":  func() { dst = AppendString(dst[:0], "he said \"hi\"\n") },
	}
	for name, fn := range cases {
		if n := testing.AllocsPerRun(100, fn); n != 0 {
			t.Errorf("%s: %v allocs/op, want 0", name, n)
		}
	}
}
