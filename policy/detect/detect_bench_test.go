package detect

import (
	"strings"
	"testing"
)

func BenchmarkDetect(b *testing.B) {
	for name, text := range map[string]string{
		"clean":  strings.Repeat("Please summarise the quarterly report for the sales team and list the main risks. ", 13)[:1024],
		"digits": strings.Repeat("Order 4412 shipped on 2026-11-03 to jane@example.com, call +44 20 7946 0958. ", 14)[:1024],
	} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				PII(text)
				Secrets(text)
			}
		})
	}
}
