package gateway

import (
	"errors"
	"testing"
)

// TestSettle drives the watcher's stability check with explicit polls: a
// changed file is reloaded only once it reads the same on two polls in a
// row, and each settled content is reloaded once.
func TestSettle(t *testing.T) {
	const running = "models: [a]\n"
	missing := errors.New("no such file")
	type poll struct {
		file   string
		err    error
		reload bool
	}
	for _, tc := range []struct {
		name  string
		polls []poll
	}{
		{"unchanged file is never reloaded", []poll{{running, nil, false}, {running, nil, false}, {running, nil, false}}},
		{"a change waits for a second identical poll", []poll{{running, nil, false}, {"models: [b]\n", nil, false}, {"models: [b]\n", nil, true}, {"models: [b]\n", nil, false}}},
		{"written in two halves between polls", []poll{
			{running, nil, false},
			{"backends: [x]\n", nil, false},              // first half
			{"backends: [x]\nmodels: [b]\n", nil, false}, // second half lands: changed again
			{"backends: [x]\nmodels: [b]\n", nil, true},  // stable now
			{"backends: [x]\nmodels: [b]\n", nil, false}, // reloaded once
		}},
		{"a file that keeps changing is left alone", []poll{{"v1", nil, false}, {"v2", nil, false}, {"v3", nil, false}, {"v4", nil, false}}},
		{"same size, other bytes", []poll{{"models: [b]\n", nil, false}, {"models: [c]\n", nil, false}, {"models: [c]\n", nil, true}}},
		{"a read error breaks stability", []poll{{"models: [b]\n", nil, false}, {"", missing, false}, {"models: [b]\n", nil, false}, {"models: [b]\n", nil, true}}},
		{"a refused file is not retried, its fix is", []poll{
			{"", nil, false}, {"", nil, true}, {"", nil, false}, // the empty file, once
			{running, nil, false}, {running, nil, true}, // back to the running bytes: reload decides
		}},
		{"the first poll only records", []poll{{"models: [b]\n", nil, false}, {"models: [b]\n", nil, true}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newSettle([]byte(running))
			for i, p := range tc.polls {
				if got := f.observe([]byte(p.file), p.err); got != p.reload {
					t.Fatalf("poll %d (%q, err %v): reload %v, want %v", i+1, p.file, p.err, got, p.reload)
				}
			}
		})
	}
}
