//go:build !race

package embed

import "testing"

// The race detector makes sync.Pool drop items, so allocation counts are
// only meaningful without it.
func TestEmbedIntoZeroAllocs(t *testing.T) {
	e := NewBuiltin(0)
	dst := make([]float32, e.Dim())
	text := "Can you give me a simple explanation of how vaccines train the immune system, something I'd explain to a 10 year old?"
	if n := testing.AllocsPerRun(200, func() { dst = e.EmbedInto(text, dst) }); n != 0 {
		t.Errorf("EmbedInto: %v allocs/op, want 0", n)
	}
	if n := testing.AllocsPerRun(200, func() { _ = Guard(text, "How do I reset my password?") }); n != 0 {
		t.Errorf("Guard: %v allocs/op, want 0", n)
	}
}
