package config

import (
	"strings"
	"testing"
)

func TestBatching(t *testing.T) {
	const head = "backends:\n  - {name: a, kind: sim}\n  - {name: b, kind: sim}\nmodels:\n  - name: m\n    targets: [{backend: a}, {backend: b}]\n"
	tests := []struct {
		name, pool string
		err        string // "" = valid; else a substring, with its line
		want       *Batching
	}{
		{"off by default", "", "", nil},
		{"defaults", "    batching: {}\n", "", &Batching{MaxBatchSize: 64, QueueSize: 1024, PriorityLevels: 1, DefaultPriority: 1, MaxInFlight: 8}},
		{"levels give the middle default", "    batching: {priority_levels: 3, max_queue_delay: 2ms, completions: true}\n", "",
			&Batching{MaxBatchSize: 64, MaxQueueDelay: Duration(2e6), QueueSize: 1024, PriorityLevels: 3, DefaultPriority: 2, MaxInFlight: 8, Completions: true}},
		{"batch size 0", "    batching: {max_batch_size: 0}\n", ":7:32: models[0].batching.max_batch_size: must be from 1 to 65536, got 0", nil},
		{"delay too long", "    batching: {max_queue_delay: 1m}\n", ":7:33: models[0].batching.max_queue_delay: must be from 0 to 10s", nil},
		{"negative tokens", "    batching: {max_tokens: -1}\n", "models[0].batching.max_tokens", nil},
		{"queue too large", "    batching: {queue_size: 99999999}\n", "models[0].batching.queue_size: must be from 1 to", nil},
		{"too many levels", "    batching: {priority_levels: 17}\n", "models[0].batching.priority_levels: must be from 1 to 16", nil},
		{"default out of the levels", "    batching: {priority_levels: 2, default_priority: 3}\n", "models[0].batching.default_priority: must be a level from 1 to priority_levels (2), got 3", nil},
		{"in flight 0", "    batching: {max_in_flight: 0}\n", "models[0].batching.max_in_flight: must be from 1 to 4096, got 0", nil},
		{"unknown key", "    batching: {max_batch: 3}\n", "unknown key \"max_batch\"", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(head+tc.pool), "b.yaml")
			if tc.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				got := c.Models[0].Batching
				if (got == nil) != (tc.want == nil) || got != nil && *got != *tc.want {
					t.Fatalf("batching %+v, want %+v", got, tc.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("error %v, want %q", err, tc.err)
			}
		})
	}
}
