package guard

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"

	"switchyard/gateway"
	"switchyard/policy"
)

// BenchmarkWindow is the output window on one streamed answer of 512
// bytes in 128 chunks of 4 (about a token each), under the default policy
// library: check_every 1 (an evaluation whenever text could be released)
// against the default.
func BenchmarkWindow(b *testing.B) {
	e, err := policy.Load(context.Background(), policy.Options{Dir: "../../policy/rego"})
	if err != nil {
		b.Fatal(err)
	}
	s := &Stage{eng: e, log: slog.New(slog.NewTextHandler(io.Discard, nil)), met: &gateway.StageMetrics{}}
	text := strings.Repeat("The river runs past the old mill and the town. ", 11)[:512]
	var events [][]byte
	for i := 0; i < len(text); i += 4 {
		events = append(events, chunkEvent(text[i:i+4]))
	}
	for _, every := range []int{1, DefaultCheckEvery} {
		b.Run("check_every="+strconv.Itoa(every), func(b *testing.B) {
			b.ReportAllocs()
			checks := 0
			for i := 0; i < b.N; i++ {
				w := &window{s: s, ctx: context.Background(), size: DefaultWindow, every: every, in: policy.Input{Phase: "response"}}
				var out []byte
				for _, ev := range events {
					if out, err = w.OnEvent(nil, out[:0], ev); err != nil {
						b.Fatal(err)
					}
				}
				if _, err = w.OnEvent(nil, out[:0], []byte("[DONE]")); err != nil {
					b.Fatal(err)
				}
				checks += w.checks
			}
			b.ReportMetric(float64(checks)/float64(b.N), "evals/stream")
		})
	}
}
