package cache_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const semStage = "cache: {semantic: {}}"

func TestSemanticHitsAndIsolation(t *testing.T) {
	g := start(t, config(t, semStage, ""))
	sys := "You are a helpful travel assistant."
	first := chat(t, g, "sk-acme-1", chatBody(sys, "What is the capital of France?", ""))
	if outcome(first) != "miss" {
		t.Fatalf("first: %q", outcome(first))
	}
	para := chat(t, g, "sk-acme-1", chatBody(sys, "what's the capital of france", ""))
	if outcome(para) != "semantic-hit" || para.body != first.body {
		t.Fatalf("paraphrase: %q\n%s", outcome(para), para.body)
	}
	for name, c := range map[string]struct{ key, body string }{
		"near miss (another entity)": {"sk-acme-1", chatBody(sys, "What is the capital of Germany?", "")},
		"near miss (negation)":       {"sk-acme-1", chatBody(sys, "What is not the capital of France?", "")},
		"another tenant":             {"sk-globex", chatBody(sys, "what's the capital of france", "")},
		"another system prompt":      {"sk-acme-1", chatBody("You are a pirate.", "what's the capital of france", "")},
		"no system prompt":           {"sk-acme-1", chatBody("", "what's the capital of france", "")},
		"tools":                      {"sk-acme-1", chatBody(sys, "what's the capital of france", `,"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}]`)},
		"response format":            {"sk-acme-1", chatBody(sys, "what's the capital of france", `,"response_format":{"type":"json_object"}`)},
		"other parameters":           {"sk-acme-1", chatBody(sys, "what's the capital of france", `,"top_p":0.5`)},
	} {
		if a := chat(t, g, c.key, c.body); outcome(a) == "semantic-hit" || outcome(a) == "hit" {
			t.Errorf("%s: %q, want a miss", name, outcome(a))
		}
	}
	// An earlier turn is part of the context.
	twoTurns := `{"model":"sim-chat","temperature":0,"max_tokens":50,"messages":[{"role":"user","content":"I am planning a trip."},{"role":"assistant","content":"Great!"},{"role":"user","content":"what's the capital of france"}]}`
	if a := chat(t, g, "sk-acme-1", twoTurns); outcome(a) != "miss" {
		t.Errorf("another earlier turn: %q", outcome(a))
	}
	// A streaming client gets the semantic hit replayed.
	s := chat(t, g, "sk-acme-1", chatBody(sys, "What's the capital of France??", `,"stream":true`))
	if outcome(s) != "semantic-hit" || !strings.Contains(s.body, "[DONE]") {
		t.Errorf("stream: %q %s", outcome(s), s.body)
	}
	m := call(t, "GET", g.admin+"/metrics", "", "Authorization", "Bearer adm")
	if !strings.Contains(m.body, `switchyard_cache_semantic_hits_total{route="default"} 2`) || !strings.Contains(m.body, "switchyard_cache_semantic_similarity_bucket") {
		t.Errorf("metrics:\n%s", grep(m.body, "switchyard_cache_semantic"))
	}
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestSemanticFeedbackEvicts(t *testing.T) {
	g := start(t, config(t, semStage, ""))
	chat(t, g, "sk-acme-1", chatBody("", "How do I reset my password?", ""))
	hit := chat(t, g, "sk-acme-1", chatBody("", "how do i reset my password", ""))
	if outcome(hit) != "semantic-hit" {
		t.Fatalf("paraphrase: %q", outcome(hit))
	}
	a := call(t, "POST", g.admin+"/admin/cache/feedback", `{"request_id":"`+hit.header.Get("X-Request-Id")+`"}`, "Authorization", "Bearer adm")
	if a.status != 200 {
		t.Fatalf("feedback: %d %s", a.status, a.body)
	}
	l := call(t, "GET", g.admin+"/admin/cache/feedback", "", "Authorization", "Bearer adm")
	if !strings.Contains(l.body, `"kind":"semantic-hit"`) || !strings.Contains(l.body, `"matched":"How do I reset my password?"`) {
		t.Errorf("pairs: %s", l.body)
	}
	if a := chat(t, g, "sk-acme-1", chatBody("", "how do i reset my password", "")); outcome(a) == "semantic-hit" {
		t.Errorf("after feedback: %q", outcome(a))
	}
}

func TestSemanticEntriesSurviveARestart(t *testing.T) {
	dir := t.TempDir()
	cfg := strings.Replace(config(t, "cache: {exact: {enabled: false}, semantic: {}}", ""), "data_dir: ", "data_dir: "+filepath.Join(dir, "data")+" #", 1)
	g := start(t, cfg)
	chat(t, g, "sk-acme-1", chatBody("", "What time does the store open on Sunday?", ""))
	g.stop(t)
	if _, err := os.Stat(filepath.Join(dir, "data", "cache", "semantic-default.gob")); err != nil {
		t.Fatalf("no file after shutdown: %v", err)
	}
	g2 := start(t, cfg)
	// The entries load in the background (one entry: at once). One request
	// only: a miss would store the answer again and hide a failed load.
	time.Sleep(500 * time.Millisecond)
	if a := chat(t, g2, "sk-acme-1", chatBody("", "what time does the store open on sunday", "")); outcome(a) != "semantic-hit" {
		t.Errorf("after restart: %q", outcome(a))
	}
}

// TestSemanticWithAnEmbeddingsPool: the embedder is a model pool of the
// config, called through the gateway.
func TestSemanticWithAnEmbeddingsPool(t *testing.T) {
	g := start(t, config(t, "cache: {exact: {enabled: false}, semantic: {embedder: sim-embed, threshold: 0.9}}", ""))
	chat(t, g, "sk-acme-1", chatBody("", "What is the capital of France?", ""))
	if a := chat(t, g, "sk-acme-1", chatBody("", "what is the capital of france", "")); outcome(a) != "semantic-hit" {
		t.Errorf("paraphrase with the pool's vectors: %q", outcome(a))
	}
	if a := chat(t, g, "sk-acme-1", chatBody("", "What is the capital of Spain?", "")); outcome(a) != "miss" {
		t.Errorf("near miss: %q", outcome(a))
	}
	// An embedder that fails (here: no such pool) leaves the request
	// uncached; it is still answered.
	g2 := start(t, config(t, "cache: {exact: {enabled: false}, semantic: {embedder: no-such-pool}}", ""))
	if a := chat(t, g2, "sk-acme-1", chatBody("", "hello there", "")); a.status != 200 {
		t.Errorf("with a failing embedder: %d %s", a.status, a.body)
	}
}
