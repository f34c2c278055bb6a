package cache_test

import (
	"testing"
	"time"

	"switchyard/internal/testsvc"
)

// TestSharedAcrossReplicas: two gateways on one real redis-server: an
// answer cached through one is a hit on the other, exact and semantic.
func TestSharedAcrossReplicas(t *testing.T) {
	rd := testsvc.StartRedis(t)
	stage := `cache: {semantic: {persist: false}, shared: {redis: "` + rd.URL() + `"}}`
	a := start(t, config(t, stage, ""))
	b := start(t, config(t, stage, ""))

	q := chatBody("", "Which planet is the largest?", "")
	if r := chat(t, a, "sk-acme-1", q); outcome(r) != "miss" {
		t.Fatalf("first on a: %q", outcome(r))
	}
	first := chat(t, a, "sk-acme-1", q)
	got := chat(t, b, "sk-acme-1", q)
	if outcome(got) != "hit" || got.body != first.body {
		t.Fatalf("exact on b: %q %s", outcome(got), got.body)
	}
	if r := chat(t, b, "sk-globex", q); outcome(r) != "miss" {
		t.Errorf("another tenant on b: %q", outcome(r))
	}

	chat(t, a, "sk-acme-1", chatBody("", "How many moons does Mars have?", ""))
	deadline := time.Now().Add(5 * time.Second)
	for {
		r := chat(t, b, "sk-acme-1", chatBody("", "how many moons does mars have", ""))
		if outcome(r) == "semantic-hit" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("semantic on b: %q after 5s", outcome(r))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestSharedRedisDownAtStart: the route serves, caching locally.
func TestSharedRedisDownAtStart(t *testing.T) {
	port := testsvc.FreePort(t)
	g := start(t, config(t, `cache: {shared: {redis: "redis://127.0.0.1:`+itoa(port)+`"}}`, ""))
	q := chatBody("", "local only", "")
	chat(t, g, "sk-acme-1", q)
	if r := chat(t, g, "sk-acme-1", q); outcome(r) != "hit" {
		t.Errorf("local hit with Redis down: %q", outcome(r))
	}
}

func itoa(n int) string {
	b := []byte{}
	for n > 0 {
		b = append([]byte{byte('0' + n%10)}, b...)
		n /= 10
	}
	return string(b)
}
