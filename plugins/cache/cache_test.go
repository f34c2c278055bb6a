package cache_test

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"switchyard/internal/gwtest"
	"switchyard/internal/spectest"
)

type gw struct {
	url, admin string
	g          *gwtest.Gateway
}

func hashKey(k string) string {
	s := sha256.Sum256([]byte(k))
	return hex.EncodeToString(s[:])
}

// config is a gateway on the embedded simulator (answers of 6 tokens, so
// they finish with "stop") whose default route caches; extra is appended.
func config(t testing.TB, stage, extra string) string {
	t.Helper()
	return `
listen: 127.0.0.1:0
server: {watch_interval: 0s}
admin: {listen: 127.0.0.1:0, token: adm}
data_dir: ` + filepath.Join(t.TempDir(), "data") + `
log: {level: error, requests: false}
backends:
  - {name: sim, kind: sim, sim: {model: sim-chat, embed-model: sim-embed, profile: fast, output-len: "6"}}
models:
  - {name: sim-chat, targets: [{backend: sim}]}
  - {name: sim-embed, targets: [{backend: sim}]}
tenants: [{name: acme}, {name: globex}]
keys:
  - {id: a1, sha256: ` + hashKey("sk-acme-1") + `, tenant: acme}
  - {id: a2, sha256: ` + hashKey("sk-acme-2") + `, tenant: acme}
  - {id: g1, sha256: ` + hashKey("sk-globex") + `, tenant: globex}
routes:
  - name: default
    match: {model: "*"}
    chain:
      - ` + stage + `
` + extra
}

func start(t testing.TB, cfg string) *gw {
	t.Helper()
	g := gwtest.Start(t, cfg)
	return &gw{url: g.URL, admin: g.Admin, g: g}
}

// stop shuts the gateway down now.
func (g *gw) stop(t testing.TB) { g.g.Stop() }

type answer struct {
	status int
	header http.Header
	body   string
}

func call(t *testing.T, method, url, body string, hdr ...string) answer {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, string(b)}
}

func chat(t *testing.T, g *gw, key, body string, hdr ...string) answer {
	t.Helper()
	return call(t, "POST", g.url+"/v1/chat/completions", body, append([]string{"Authorization", "Bearer " + key}, hdr...)...)
}

func chatBody(system, user string, extra string) string {
	msgs := `[{"role":"user","content":` + quote(user) + `}]`
	if system != "" {
		msgs = `[{"role":"system","content":` + quote(system) + `},{"role":"user","content":` + quote(user) + `}]`
	}
	return `{"model":"sim-chat","temperature":0,"max_tokens":50,"messages":` + msgs + extra + `}`
}

func quote(s string) string { b, _ := json.Marshal(s); return string(b) }

func outcome(a answer) string { return a.header.Get("X-Switchyard-Cache") }

func TestExactHitMissAndBypass(t *testing.T) {
	g := start(t, config(t, "cache", ""))
	q := chatBody("", "What is the capital of France?", "")
	first := chat(t, g, "sk-acme-1", q)
	if first.status != 200 || outcome(first) != "miss" {
		t.Fatalf("first: %d %q %s", first.status, outcome(first), first.body)
	}
	second := chat(t, g, "sk-acme-1", q)
	if second.status != 200 || outcome(second) != "hit" || second.body != first.body {
		t.Fatalf("second: %d %q\n%s\nwant the first answer\n%s", second.status, outcome(second), second.body, first.body)
	}
	// The same tenant's other key shares it; another tenant never does.
	if a := chat(t, g, "sk-acme-2", q); outcome(a) != "hit" {
		t.Errorf("same tenant, other key: %q", outcome(a))
	}
	if a := chat(t, g, "sk-globex", q); outcome(a) != "miss" {
		t.Errorf("other tenant: %q, want miss", outcome(a))
	}
	// Fields that do not change the answer do not change the key.
	same := []string{
		`{"model":"sim-chat","max_tokens":50,"temperature":0.0,"user":"u1","messages":[{"role":"user","content":"What is the capital of France?"}]}`,
		`{"messages":[{"role":"user","content":[{"type":"text","text":"What is the capital of France?"}]}],"temperature":0,"max_tokens":50,"model":"sim-chat","metadata":{"a":"b"}}`,
	}
	for _, b := range same {
		if a := chat(t, g, "sk-acme-1", b); outcome(a) != "hit" {
			t.Errorf("%s: %q, want hit", b, outcome(a))
		}
	}
	// Fields that do change it.
	differ := []string{
		chatBody("", "What is the capital of France? ", ""),
		chatBody("Answer in French.", "What is the capital of France?", ""),
		chatBody("", "What is the capital of France?", `,"seed":7`),
		chatBody("", "What is the capital of France?", `,"n":2`),
		chatBody("", "What is the capital of France?", `,"response_format":{"type":"json_object"}`),
		chatBody("", "What is the capital of France?", `,"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}]`),
		strings.Replace(chatBody("", "What is the capital of France?", ""), `"max_tokens":50`, `"max_tokens":51`, 1),
	}
	for _, b := range differ {
		if a := chat(t, g, "sk-acme-1", b); outcome(a) != "miss" {
			t.Errorf("%s: %q, want miss", b, outcome(a))
		}
	}
	// Client control.
	if a := chat(t, g, "sk-acme-1", q, "Cache-Control", "no-store"); outcome(a) != "bypass" {
		t.Errorf("no-store: %q", outcome(a))
	}
	if a := chat(t, g, "sk-acme-1", q, "X-Switchyard-Cache", "bypass"); outcome(a) != "bypass" {
		t.Errorf("x-switchyard-cache bypass: %q", outcome(a))
	}
	if a := chat(t, g, "sk-acme-1", q, "Cache-Control", "no-cache"); outcome(a) != "miss" {
		t.Errorf("no-cache: %q, want miss (refresh)", outcome(a))
	}
	// Not deterministic: not cached.
	nd := `{"model":"sim-chat","max_tokens":50,"messages":[{"role":"user","content":"hello"}]}`
	if a := chat(t, g, "sk-acme-1", nd); outcome(a) != "bypass" {
		t.Errorf("no temperature 0 and no seed: %q, want bypass", outcome(a))
	}
}

func TestTruncatedAnswersAreNotStored(t *testing.T) {
	g := start(t, config(t, "cache", ""))
	// max_tokens 3 < the simulator's 6: finish_reason length.
	q := `{"model":"sim-chat","temperature":0,"max_tokens":3,"messages":[{"role":"user","content":"tell me"}]}`
	for i := 0; i < 2; i++ {
		a := chat(t, g, "sk-acme-1", q)
		if !strings.Contains(a.body, `"length"`) || outcome(a) != "miss" {
			t.Fatalf("request %d: %q %s", i, outcome(a), a.body)
		}
	}
	g2 := start(t, config(t, "cache: {allow_truncated: true}", ""))
	chat(t, g2, "sk-acme-1", q)
	if a := chat(t, g2, "sk-acme-1", q); outcome(a) != "hit" {
		t.Errorf("allow_truncated: %q, want hit", outcome(a))
	}
}

// events reads an SSE body's data lines.
func events(t *testing.T, body string) []string {
	t.Helper()
	var out []string
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			out = append(out, d)
		}
	}
	return out
}

// content joins a stream's content deltas.
func content(t *testing.T, evs []string) (string, bool) {
	t.Helper()
	var b strings.Builder
	usage := false
	for _, e := range evs {
		if e == "[DONE]" {
			continue
		}
		var c struct {
			Choices []struct {
				Delta struct {
					Content string `json:"content"`
				} `json:"delta"`
			} `json:"choices"`
			Usage *json.RawMessage `json:"usage"`
		}
		if err := json.Unmarshal([]byte(e), &c); err != nil {
			t.Fatalf("event %q: %v", e, err)
		}
		for _, ch := range c.Choices {
			b.WriteString(ch.Delta.Content)
		}
		if c.Usage != nil && string(*c.Usage) != "null" {
			usage = true
		}
	}
	return b.String(), usage
}

func TestStreamsAreStoredAndReplayed(t *testing.T) {
	g := start(t, config(t, "cache", ""))
	stream := chatBody("", "Name three colours.", `,"stream":true`)
	plain := chatBody("", "Name three colours.", "")

	// A streamed miss is stored as the answer its chunks make...
	first := chat(t, g, "sk-acme-1", stream)
	if outcome(first) != "miss" {
		t.Fatalf("first: %q", outcome(first))
	}
	text, _ := content(t, events(t, first.body))
	// ...and served to a plain client...
	hit := chat(t, g, "sk-acme-1", plain)
	if outcome(hit) != "hit" {
		t.Fatalf("plain after a streamed miss: %q %s", outcome(hit), hit.body)
	}
	var c struct {
		Object  string `json:"object"`
		Choices []struct {
			Message      struct{ Content string } `json:"message"`
			FinishReason string                   `json:"finish_reason"`
		} `json:"choices"`
	}
	spectest.Check(t, "CreateChatCompletionResponse", []byte(hit.body))
	if err := json.Unmarshal([]byte(hit.body), &c); err != nil || c.Object != "chat.completion" || len(c.Choices) != 1 ||
		c.Choices[0].Message.Content != text || c.Choices[0].FinishReason != "stop" {
		t.Fatalf("assembled answer %s, want content %q", hit.body, text)
	}
	// ...and replayed to a streaming one, with usage when asked.
	replay := chat(t, g, "sk-acme-1", chatBody("", "Name three colours.", `,"stream":true,"stream_options":{"include_usage":true}`))
	evs := events(t, replay.body)
	got, usage := content(t, evs)
	if outcome(replay) != "hit" || got != text || !usage || evs[len(evs)-1] != "[DONE]" ||
		!strings.HasPrefix(replay.header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("replay: %q content %q usage %v\n%s", outcome(replay), got, usage, replay.body)
	}
}

func TestEmbeddingsAreCached(t *testing.T) {
	g := start(t, config(t, "cache", ""))
	body := `{"model":"sim-embed","input":["a","b"]}`
	h := []string{"Authorization", "Bearer sk-acme-1"}
	first := call(t, "POST", g.url+"/v1/embeddings", body, h...)
	second := call(t, "POST", g.url+"/v1/embeddings", body, h...)
	if outcome(first) != "miss" || outcome(second) != "hit" || first.body != second.body {
		t.Fatalf("embeddings: %q then %q", outcome(first), outcome(second))
	}
}

func TestAdminPurgeAndFeedback(t *testing.T) {
	g := start(t, config(t, "cache", ""))
	adm := []string{"Authorization", "Bearer adm"}
	q := chatBody("", "purge me", "")
	chat(t, g, "sk-acme-1", q)
	chat(t, g, "sk-globex", q)
	if a := call(t, "DELETE", g.admin+"/admin/cache?tenant=acme", "", adm...); a.status != 200 {
		t.Fatalf("purge: %d %s", a.status, a.body)
	}
	if a := chat(t, g, "sk-acme-1", q); outcome(a) != "miss" {
		t.Errorf("acme after its purge: %q", outcome(a))
	}
	if a := chat(t, g, "sk-globex", q); outcome(a) != "hit" {
		t.Errorf("globex after acme's purge: %q", outcome(a))
	}
	if a := call(t, "DELETE", g.admin+"/admin/cache", "", adm...); a.status != 200 {
		t.Fatalf("purge all: %d %s", a.status, a.body)
	}
	if a := chat(t, g, "sk-globex", q); outcome(a) != "miss" {
		t.Errorf("globex after purging all: %q", outcome(a))
	}
	if a := call(t, "DELETE", g.admin+"/admin/cache?colour=red", "", adm...); a.status != 400 {
		t.Errorf("unknown parameter: %d", a.status)
	}
	if a := call(t, "DELETE", g.admin+"/admin/cache", ""); a.status != 401 {
		t.Errorf("no admin token: %d", a.status)
	}

	// Feedback: the hit served to a request id is evicted and counted.
	hit := chat(t, g, "sk-globex", q)
	id := hit.header.Get("X-Request-Id")
	if outcome(hit) != "hit" || id == "" {
		t.Fatalf("hit %q id %q", outcome(hit), id)
	}
	for _, bad := range []string{`{`, `{"request_id":"x","colour":1}`, `{}`} {
		if a := call(t, "POST", g.admin+"/admin/cache/feedback", bad, adm...); a.status != 400 {
			t.Errorf("feedback %s: %d %s", bad, a.status, a.body)
		}
	}
	if a := call(t, "POST", g.admin+"/admin/cache/feedback", `{"request_id":"nobody"}`, adm...); a.status != 404 {
		t.Errorf("unknown request id: %d %s", a.status, a.body)
	}
	if a := call(t, "POST", g.admin+"/admin/cache/feedback", `{"request_id":`+quote(id)+`}`, adm...); a.status != 200 {
		t.Fatalf("feedback: %d %s", a.status, a.body)
	}
	if a := chat(t, g, "sk-globex", q); outcome(a) != "miss" {
		t.Errorf("after feedback: %q, want miss (evicted)", outcome(a))
	}
	if a := call(t, "GET", g.admin+"/admin/cache/feedback", "", adm...); a.status != 200 || !strings.Contains(a.body, id) {
		t.Errorf("feedback list: %d %s", a.status, a.body)
	}
	m := call(t, "GET", g.admin+"/metrics", "", adm...)
	for _, want := range []string{`switchyard_cache_false_hits_total{route="default"} 1`, `switchyard_cache_hits_total{route="default"}`, `switchyard_cache_bytes{route="default"}`} {
		if !strings.Contains(m.body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	for _, c := range []struct{ stage, want string }{
		{"cache: {scope: galaxy}", "scope"},
		{"cache: {exact: {ttl: -1s}}", "ttl"},
		{"cache: {exact: {enabled: false}}", "both"},
		{"cache: {semantic: {threshold: 1.5}}", "threshold"},
		{"cache: {colour: red}", "colour"},
	} {
		_, path, err := gwtest.New(t, config(t, c.stage, ""))
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), path+":") {
			t.Errorf("%s: error %v, want one naming %q with the file and line", c.stage, err, c.want)
		}
	}
}

var _ = bytes.Equal
