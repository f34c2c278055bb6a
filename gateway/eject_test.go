package gateway_test

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for the gateway's concurrent log writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

const faultyChat = `{"model":"sim-chat","messages":[{"role":"user","content":"hi"}],"max_tokens":1}`

// TestLastBackendNotEjected: request-specific 500s from the only backend of
// a pool do not eject it; later requests and /readyz still work, and the
// refused ejection is logged.
func TestLastBackendNotEjected(t *testing.T) {
	simURL, _ := startSim(t, nil)
	var log syncBuffer
	g := startGatewayLog(t, `
listen: 127.0.0.1:0
server: {watch_interval: 0s}
backends:
  - {name: only, url: "`+simURL+`", health: {failure_threshold: 2, cooldown: 1m}}
models:
  - {name: sim-chat, targets: [{backend: only}], retry: {attempts: 1}}
`, &log)
	for i := range 4 {
		if code, _, b := post(t, g.url+"/v1/chat/completions", faultyChat, "x-sim-fault", "500"); code != 502 {
			t.Fatalf("faulty request %d: %d %s; want the upstream's 500 as 502", i, code, b)
		}
	}
	if code, _, b := post(t, g.url+"/v1/chat/completions", faultyChat); code != 200 {
		t.Fatalf("a good request after the faulty ones: %d %s; want 200 (the only backend must stay in rotation)", code, b)
	}
	if code, body := get(t, g.url+"/readyz"); code != 200 {
		t.Errorf("readyz after the faulty requests: %d %s; want 200", code, body)
	}
	if s := log.String(); !strings.Contains(s, "stays in rotation") || !strings.Contains(s, "backend=only") {
		t.Errorf("the refused ejection is not logged:\n%s", s)
	}
	if s := log.String(); strings.Contains(s, "backend ejected") {
		t.Errorf("the only backend was ejected:\n%s", s)
	}
}

// TestEjectionLogged: with a second healthy backend, a failing one is
// ejected, which is logged with its cool-down, and its return to rotation
// after the cool-down is logged too.
func TestEjectionLogged(t *testing.T) {
	simA, _ := startSim(t, nil)
	simB, _ := startSim(t, nil)
	var log syncBuffer
	g := startGatewayLog(t, `
listen: 127.0.0.1:0
server: {watch_interval: 0s}
backends:
  - {name: a, url: "`+simA+`", health: {failure_threshold: 1, cooldown: 300ms}}
  - {name: b, url: "`+simB+`", health: {failure_threshold: 1, cooldown: 300ms}}
models:
  - {name: sim-chat, targets: [{backend: a}, {backend: b}], retry: {attempts: 1}}
`, &log)
	// Every request fails: the first backend to fail is ejected, the
	// second is then the pool's last and stays.
	for range 2 {
		post(t, g.url+"/v1/chat/completions", faultyChat, "x-sim-fault", "500")
	}
	s := log.String()
	if strings.Count(s, "backend ejected") != 1 || !strings.Contains(s, "cooldown=300ms") {
		t.Fatalf("want one ejection logged with its cool-down:\n%s", s)
	}
	if !strings.Contains(s, "stays in rotation") {
		t.Errorf("the refused ejection of the last backend is not logged:\n%s", s)
	}
	time.Sleep(350 * time.Millisecond)
	for range 2 {
		if code, _, b := post(t, g.url+"/v1/chat/completions", faultyChat); code != 200 {
			t.Fatalf("after the cool-down: %d %s", code, b)
		}
	}
	if s := log.String(); !strings.Contains(s, "back in rotation") {
		t.Errorf("the return to rotation is not logged:\n%s", s)
	}
}
