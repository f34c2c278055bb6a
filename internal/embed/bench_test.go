package embed

import (
	"strings"
	"testing"
)

const prompt20 = "Can you give me a simple explanation of how vaccines train the immune system for a ten year old?"

func prompt200() string {
	var b strings.Builder
	for b.Len() < 1100 {
		b.WriteString("I'm moving house next month. How do I update the address on my account so future orders go to the new place? ")
	}
	return b.String()
}

func BenchmarkEmbedInto(b *testing.B) {
	e := NewBuiltin(0)
	for _, bc := range []struct{ name, text string }{{"20words", prompt20}, {"200words", prompt200()}} {
		b.Run(bc.name, func(b *testing.B) {
			dst := make([]float32, e.Dim())
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.text)))
			for b.Loop() {
				dst = e.EmbedInto(bc.text, dst)
			}
		})
	}
}

func BenchmarkGuard(b *testing.B) {
	x, y := "Is it safe to drink tap water in Mexico City?", "can you drink the tap water in mexico city"
	b.ReportAllocs()
	for b.Loop() {
		_ = Guard(x, y)
	}
}
