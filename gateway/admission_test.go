package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"switchyard/internal/testsvc"
	"sync"
	"testing"
	"time"

	"switchyard/gateway"
)

// Admission through the whole gateway: keys, tenants, limits and their
// headers, budgets, shedding and the admin keys API, on the embedded
// simulator. The limiters' own math is tested in internal/limit.

func keyHash(k string) string { return gateway.HashKey(k) }

// call sends method url with body and headers; it returns status, headers, body.
func call(t *testing.T, method, url, body string, hdr ...string) (int, http.Header, []byte) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// serveAdmin serves g's admin API on a loopback port and returns its URL.
func (g *gw) serveAdmin(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.srv.ServeAdmin(ln) }() // stopped by the gateway's Shutdown
	return "http://" + ln.Addr().String()
}

type apiErr struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    string  `json:"code"`
	} `json:"error"`
}

func decodeErr(t *testing.T, b []byte) apiErr {
	t.Helper()
	var e apiErr
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatalf("error body %q: %v", b, err)
	}
	return e
}

const admChat = `{"model":"sim-chat","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}`

func bearer(k string) []string { return []string{"Authorization", "Bearer " + k} }

func TestAdmissionRequestLimitAndHeaders(t *testing.T) {
	g := startGateway(t, simConfig(`
keys:
  - {id: k1, sha256: `+keyHash("sk-one")+`, limits: {rpm: 3}}
`))
	for i := 0; i < 3; i++ {
		code, h, b := post(t, g.url+"/v1/chat/completions", admChat, bearer("sk-one")...)
		if code != 200 {
			t.Fatalf("request %d: %d %s", i, code, b)
		}
		if h.Get("x-ratelimit-limit-requests") != "3" || h.Get("x-ratelimit-remaining-requests") != strconv.Itoa(2-i) || h.Get("x-ratelimit-reset-requests") == "" {
			t.Errorf("request %d headers: limit %q remaining %q reset %q", i, h.Get("x-ratelimit-limit-requests"),
				h.Get("x-ratelimit-remaining-requests"), h.Get("x-ratelimit-reset-requests"))
		}
	}
	code, h, b := post(t, g.url+"/v1/chat/completions", admChat, bearer("sk-one")...)
	if code != 429 {
		t.Fatalf("4th request: %d %s, want 429", code, b)
	}
	e := decodeErr(t, b)
	if e.Error.Type != "requests" || e.Error.Code != "rate_limit_exceeded" || !strings.Contains(e.Error.Message, "requests per min (RPM): Limit 3") {
		t.Errorf("429 body: %s", b)
	}
	if ra, err := strconv.Atoi(h.Get("retry-after")); err != nil || ra < 1 || ra > 20 {
		t.Errorf("retry-after %q", h.Get("retry-after"))
	}
	if h.Get("x-ratelimit-remaining-requests") != "0" {
		t.Errorf("429 remaining-requests %q", h.Get("x-ratelimit-remaining-requests"))
	}
}

func TestAdmissionTokenLimitReservesAndSettles(t *testing.T) {
	// The simulator answers with 10 tokens whatever max_tokens says.
	g := startGateway(t, strings.Replace(simConfig(`
keys:
  - {id: k1, sha256: `+keyHash("sk-one")+`, limits: {tpm: 2000}}
`), "itl: 1ms}", `itl: 1ms, output-len: "10"}`, 1))
	// Each request reserves its prompt estimate plus max_tokens 500; the
	// simulator answers with far fewer tokens, and the rest is refunded,
	// so more than 2000/500 requests fit in a minute.
	body := `{"model":"sim-chat","max_tokens":500,"messages":[{"role":"user","content":"hi"}]}`
	for i := 0; i < 10; i++ {
		code, h, b := post(t, g.url+"/v1/chat/completions", body, bearer("sk-one")...)
		if code != 200 {
			t.Fatalf("request %d: %d %s (tokens were not refunded?)", i, code, b)
		}
		if h.Get("x-ratelimit-limit-tokens") != "2000" {
			t.Fatalf("limit-tokens %q", h.Get("x-ratelimit-limit-tokens"))
		}
	}
	// Streamed, without include_usage: the gateway asks for usage itself,
	// settles with it, and the client sees no usage chunk.
	stream := `{"model":"sim-chat","stream":true,"max_tokens":500,"messages":[{"role":"user","content":"hi"}]}`
	for i := 0; i < 5; i++ {
		code, _, b := post(t, g.url+"/v1/chat/completions", stream, bearer("sk-one")...)
		if code != 200 || !strings.Contains(string(b), "[DONE]") {
			t.Fatalf("stream %d: %d %s", i, code, b)
		}
		if strings.Contains(string(b), `"prompt_tokens"`) {
			t.Fatalf("stream %d shows a usage chunk the client did not ask for", i)
		}
	}
	// A request that could never fit.
	code, _, b := post(t, g.url+"/v1/chat/completions", `{"model":"sim-chat","max_tokens":5000,"messages":[{"role":"user","content":"hi"}]}`, bearer("sk-one")...)
	if e := decodeErr(t, b); code != 429 || e.Error.Type != "tokens" || !strings.Contains(e.Error.Message, "Request too large") {
		t.Errorf("oversized: %d %s", code, b)
	}
}

func TestAdmissionTenantPoolAndModelLimits(t *testing.T) {
	g := startGateway(t, simConfig(`
tenants:
  - {name: acme, limits: {rpm: 4}}
  - {name: other}
keys:
  - {id: a1, sha256: `+keyHash("sk-a1")+`, tenant: acme}
  - {id: a2, sha256: `+keyHash("sk-a2")+`, tenant: acme, model_limits: {"sim-e*": {rpm: 1}}}
  - {id: o1, sha256: `+keyHash("sk-o1")+`, tenant: other}
`))
	// The tenant's 4 per minute are shared by its keys.
	for i, k := range []string{"sk-a1", "sk-a2", "sk-a1", "sk-a2"} {
		if code, _, b := post(t, g.url+"/v1/chat/completions", admChat, bearer(k)...); code != 200 {
			t.Fatalf("request %d: %d %s", i, code, b)
		}
	}
	code, _, b := post(t, g.url+"/v1/chat/completions", admChat, bearer("sk-a1")...)
	if e := decodeErr(t, b); code != 429 || !strings.Contains(e.Error.Message, "tenant `acme`") {
		t.Errorf("5th acme request: %d %s", code, b)
	}
	// Another tenant is not affected.
	if code, _, b := post(t, g.url+"/v1/chat/completions", admChat, bearer("sk-o1")...); code != 200 {
		t.Errorf("other tenant: %d %s", code, b)
	}
	// Unknown and malformed keys.
	for _, k := range []string{"sk-nope", strings.Repeat("x", 300)} {
		code, _, b := post(t, g.url+"/v1/chat/completions", admChat, bearer(k)...)
		if e := decodeErr(t, b); code != 401 || e.Error.Code != "invalid_api_key" {
			t.Errorf("key %.10q: %d %s", k, code, b)
		}
	}
}

func TestAdmissionPoolLimitAndEmbeddingsModelLimit(t *testing.T) {
	g := startGateway(t, `
listen: 127.0.0.1:0
server: {watch_interval: 0s}
backends:
  - {name: sim, kind: sim, sim: {model: sim-chat, embed-model: sim-embed, profile: fast, itl: 1ms}}
models:
  - {name: sim-chat, targets: [{backend: sim}], limits: {rpm: 2}}
  - {name: sim-embed, targets: [{backend: sim}]}
keys:
  - {id: k1, sha256: `+keyHash("sk-one")+`, model_limits: {"sim-embed": {rpm: 1}}}
`)
	embed := `{"model":"sim-embed","input":"hello"}`
	if code, _, b := post(t, g.url+"/v1/embeddings", embed, bearer("sk-one")...); code != 200 {
		t.Fatalf("embeddings: %d %s", code, b)
	}
	code, _, b := post(t, g.url+"/v1/embeddings", embed, bearer("sk-one")...)
	if e := decodeErr(t, b); code != 429 || !strings.Contains(e.Error.Message, "on models `sim-embed`") {
		t.Errorf("2nd embeddings: %d %s", code, b)
	}
	for i := 0; i < 2; i++ {
		if code, _, b := post(t, g.url+"/v1/chat/completions", admChat, bearer("sk-one")...); code != 200 {
			t.Fatalf("chat %d: %d %s", i, code, b)
		}
	}
	code, _, b = post(t, g.url+"/v1/chat/completions", admChat, bearer("sk-one")...)
	if e := decodeErr(t, b); code != 429 || !strings.Contains(e.Error.Message, "model `sim-chat`") {
		t.Errorf("3rd chat: %d %s", code, b)
	}
}

// slowChat is a streamed request that holds its slot for about a second.
const slowChat = `{"model":"sim-chat","stream":true,"max_tokens":20,"messages":[{"role":"user","content":"hi"}]}`

func TestAdmissionConcurrencyLimit(t *testing.T) {
	g := startGateway(t, `
listen: 127.0.0.1:0
server: {watch_interval: 0s}
backends:
  - {name: sim, kind: sim, sim: {model: sim-chat, profile: fast, itl: 50ms}}
models:
  - {name: sim-chat, targets: [{backend: sim}]}
keys:
  - {id: k1, sha256: `+keyHash("sk-one")+`, limits: {concurrency: 1}}
`)
	started := make(chan struct{})
	done := make(chan int)
	go func() {
		req, _ := http.NewRequest("POST", g.url+"/v1/chat/completions", strings.NewReader(slowChat))
		req.Header.Set("Authorization", "Bearer sk-one")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			close(started)
			done <- 0
			return
		}
		close(started)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	<-started
	code, _, b := post(t, g.url+"/v1/chat/completions", admChat, bearer("sk-one")...)
	if e := decodeErr(t, b); code != 429 || !strings.Contains(e.Error.Message, "in flight") {
		t.Errorf("second request in flight: %d %s", code, b)
	}
	if c := <-done; c != 200 {
		t.Fatalf("the stream: %d", c)
	}
	if code, _, b := post(t, g.url+"/v1/chat/completions", admChat, bearer("sk-one")...); code != 200 {
		t.Errorf("after the stream ended: %d %s", code, b)
	}
}

func TestAdmissionShedsByPriority(t *testing.T) {
	g := startGateway(t, `
listen: 127.0.0.1:0
server: {watch_interval: 0s, public_metrics: true}
backends:
  - {name: sim, kind: sim, max_concurrency: 1, sim: {model: sim-chat, profile: fast, itl: 40ms}}
models:
  - {name: sim-chat, targets: [{backend: sim}]}
admission: {wait: {standard: 150ms, critical: 10s}}
keys:
  - {id: shed, sha256: `+keyHash("sk-shed")+`, priority: sheddable}
  - {id: std, sha256: `+keyHash("sk-std")+`}
  - {id: crit, sha256: `+keyHash("sk-crit")+`, priority: critical}
`)
	hold := func(key string) chan int {
		ch := make(chan int, 1)
		go func() {
			code, _, _ := post(t, g.url+"/v1/chat/completions", slowChat, bearer(key)...)
			ch <- code
		}()
		return ch
	}
	first := hold("sk-std")
	waitFor(t, "the first stream to hold the pool's only slot", 5*time.Second, func() bool {
		return strings.Contains(metricsText(t, g), `switchyard_admission_inflight{model="sim-chat"} 1`)
	})
	// sheddable: refused at once.
	start := time.Now()
	code, h, b := post(t, g.url+"/v1/chat/completions", admChat, bearer("sk-shed")...)
	if code != 503 || h.Get("retry-after") == "" || time.Since(start) > 100*time.Millisecond {
		t.Errorf("sheddable: %d after %v %s", code, time.Since(start), b)
	}
	// standard: waits its 150ms, then 503.
	start = time.Now()
	code, _, b = post(t, g.url+"/v1/chat/completions", admChat, bearer("sk-std")...)
	if waited := time.Since(start); code != 503 || waited < 140*time.Millisecond {
		t.Errorf("standard: %d after %v %s", code, waited, b)
	}
	// critical: waits for the slot and is served.
	code, _, b = post(t, g.url+"/v1/chat/completions", admChat, bearer("sk-crit")...)
	if code != 200 {
		t.Errorf("critical: %d %s", code, b)
	}
	if c := <-first; c != 200 {
		t.Errorf("first stream: %d", c)
	}
	m := metricsText(t, g)
	for _, want := range []string{`switchyard_admission_shed_total{model="sim-chat",class="sheddable"} 1`,
		`switchyard_admission_shed_total{model="sim-chat",class="standard"} 1`, `switchyard_admission_wait_seconds_bucket{class="critical"`} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// metricsText scrapes the gateway's metrics through its handler.
func metricsText(t *testing.T, g *gw) string {
	t.Helper()
	code, _, b := call(t, "GET", g.url+"/metrics", "")
	if code == 200 {
		return string(b)
	}
	return ""
}

func TestAdmissionBudgetAndUsage(t *testing.T) {
	t.Setenv("TEST_ADMIN_TOKEN", "adm")
	g := startGateway(t, `
listen: 127.0.0.1:0
server: {watch_interval: 0s, public_metrics: true}
admin: {listen: 127.0.0.1:0, token: "${TEST_ADMIN_TOKEN}"}
backends:
  - {name: sim, kind: sim, sim: {model: sim-chat, profile: fast, itl: 1ms}}
models:
  - {name: sim-chat, targets: [{backend: sim}], prices: {input: 100000, output: 100000}}
tenants:
  - {name: acme, budget: {period: day, hard: 1000}}
keys:
  - {id: k1, sha256: `+keyHash("sk-one")+`, tenant: acme, budget: {period: month, hard: 0.5, soft: 0.1}}
  - {id: k2, sha256: `+keyHash("sk-two")+`, tenant: acme}
`)
	admin := g.serveAdmin(t)
	auth := bearer("adm")
	// One request of some tens of tokens at $0.1 a token spends well over
	// the key's $0.50.
	if code, _, b := post(t, g.url+"/v1/chat/completions", admChat, bearer("sk-one")...); code != 200 {
		t.Fatalf("first: %d %s", code, b)
	}
	code, _, b := post(t, g.url+"/v1/chat/completions", admChat, bearer("sk-one")...)
	if e := decodeErr(t, b); code != 429 || e.Error.Code != "insufficient_quota" || e.Error.Type != "insufficient_quota" {
		t.Errorf("over budget: %d %s", code, b)
	}
	// The tenant's other key still has budget.
	if code, _, b := post(t, g.url+"/v1/chat/completions", admChat, bearer("sk-two")...); code != 200 {
		t.Errorf("other key: %d %s", code, b)
	}
	code, _, b = call(t, "GET", admin+"/admin/usage?key=k1&period=month", "", auth...)
	var u struct {
		Data []struct {
			Scope, ID    string
			USD          float64
			Requests     int64
			InputTokens  int64 `json:"input_tokens"`
			OutputTokens int64 `json:"output_tokens"`
		}
	}
	if err := json.Unmarshal(b, &u); code != 200 || err != nil || len(u.Data) != 1 || u.Data[0].USD < 0.5 || u.Data[0].Requests != 1 || u.Data[0].OutputTokens == 0 {
		t.Errorf("usage: %d %s", code, b)
	}
	code, _, b = call(t, "GET", admin+"/admin/usage?tenant=acme&period=day", "", auth...)
	if code != 200 || !strings.Contains(string(b), `"requests":2`) {
		t.Errorf("tenant usage: %d %s", code, b)
	}
	if code, _, b := call(t, "GET", admin+"/admin/usage?period=week", "", auth...); code != 400 {
		t.Errorf("bad period: %d %s", code, b)
	}
	if !strings.Contains(metricsText(t, g), `switchyard_tenant_spend_usd_total{tenant="acme"}`) {
		t.Error("no spend metric for tenant acme")
	}
}

type keyAnswer struct {
	ID        string     `json:"id"`
	Key       string     `json:"key"`
	Prefix    string     `json:"prefix"`
	Source    string     `json:"source"`
	Tenant    string     `json:"tenant"`
	RevokedAt *time.Time `json:"revoked_at"`
}

func TestAdminKeysLifecycleAcrossRestart(t *testing.T) {
	t.Setenv("TEST_ADMIN_TOKEN", "adm")
	dir := t.TempDir()
	cfg := `
listen: 127.0.0.1:0
server: {watch_interval: 0s}
admin: {listen: 127.0.0.1:0, token: "${TEST_ADMIN_TOKEN}"}
data_dir: ` + filepath.Join(dir, "data") + `
backends:
  - {name: sim, kind: sim, sim: {model: sim-chat, profile: fast, itl: 1ms}}
models:
  - {name: sim-chat, targets: [{backend: sim}]}
tenants: [{name: acme}]
keys:
  - {id: cfg, sha256: ` + keyHash("sk-cfg") + `, tenant: acme}
`
	g := startGateway(t, cfg)
	admin := g.serveAdmin(t)
	auth := bearer("adm")

	if code, _, _ := call(t, "POST", admin+"/admin/keys", `{"tenant":"acme"}`); code != 401 {
		t.Fatalf("no admin token: %d", code)
	}
	for _, bad := range []struct{ body, want string }{
		{`{"tenant":"acme",`, "invalid body"},
		{`{"tenant":"acme","colour":"red"}`, "unknown field"},
		{`{"tenant":"acme","tenant":"acme"}`, "more than once"},
		{`{"tenant":"nobody"}`, "unknown tenant"},
		{`{"tenant":"acme","priority":"vip"}`, "unknown priority"},
		{`{"tenant":"acme","limits":{"rpm":-1}}`, "must not be negative"},
		{`{"tenant":"acme","id":"cfg"}`, "config file"},
		{`{"tenant":"acme","id":"has space"}`, "character"},
	} {
		code, _, b := call(t, "POST", admin+"/admin/keys", bad.body, auth...)
		if code != 400 || !strings.Contains(string(b), bad.want) {
			t.Errorf("POST %s: %d %s, want 400 with %q", bad.body, code, b, bad.want)
		}
	}
	code, _, b := call(t, "POST", admin+"/admin/keys", `{"id":"app1","tenant":"acme","limits":{"rpm":100},"metadata":{"owner":"me"}}`, auth...)
	var made keyAnswer
	if err := json.Unmarshal(b, &made); code != 201 || err != nil || !strings.HasPrefix(made.Key, "sk-sy-") || made.ID != "app1" {
		t.Fatalf("create: %d %s", code, b)
	}
	if code, _, b := call(t, "POST", admin+"/admin/keys", `{"id":"app1","tenant":"acme"}`, auth...); code != 400 || !strings.Contains(string(b), "exists") {
		t.Errorf("duplicate id: %d %s", code, b)
	}
	if code, _, b := post(t, g.url+"/v1/chat/completions", admChat, bearer(made.Key)...); code != 200 {
		t.Fatalf("the new key: %d %s", code, b)
	}
	// Listings never show a plaintext or a hash.
	code, _, b = call(t, "GET", admin+"/admin/keys", "", auth...)
	if code != 200 || strings.Contains(string(b), made.Key) || strings.Contains(string(b), keyHash(made.Key)) ||
		!strings.Contains(string(b), `"source":"config"`) || !strings.Contains(string(b), `"source":"store"`) {
		t.Errorf("list: %d %s", code, b)
	}
	// Rotate: the old plaintext stops, the new one works.
	code, _, b = call(t, "POST", admin+"/admin/keys/app1/rotate", "", auth...)
	var rot keyAnswer
	if err := json.Unmarshal(b, &rot); code != 200 || err != nil || rot.Key == "" || rot.Key == made.Key {
		t.Fatalf("rotate: %d %s", code, b)
	}
	if code, _, _ := post(t, g.url+"/v1/chat/completions", admChat, bearer(made.Key)...); code != 401 {
		t.Errorf("old plaintext after rotate: %d", code)
	}
	if code, _, b := post(t, g.url+"/v1/chat/completions", admChat, bearer(rot.Key)...); code != 200 {
		t.Errorf("rotated key: %d %s", code, b)
	}
	// A second key, revoked.
	code, _, b = call(t, "POST", admin+"/admin/keys", `{"tenant":"acme"}`, auth...)
	var gone keyAnswer
	if err := json.Unmarshal(b, &gone); code != 201 || err != nil {
		t.Fatalf("create 2: %d %s", code, b)
	}
	if code, _, b := call(t, "DELETE", admin+"/admin/keys/"+gone.ID, "", auth...); code != 200 {
		t.Fatalf("revoke: %d %s", code, b)
	}
	if code, _, b := call(t, "DELETE", admin+"/admin/keys/"+gone.ID, "", auth...); code != 409 {
		t.Errorf("revoke again: %d %s", code, b)
	}
	if code, _, b := call(t, "DELETE", admin+"/admin/keys/cfg", "", auth...); code != 409 {
		t.Errorf("revoke a config key: %d %s", code, b)
	}
	if code, _, _ := call(t, "DELETE", admin+"/admin/keys/nope", "", auth...); code != 404 {
		t.Errorf("revoke unknown: %d", code)
	}
	code, _, b = post(t, g.url+"/v1/chat/completions", admChat, bearer(gone.Key)...)
	if e := decodeErr(t, b); code != 401 || e.Error.Code != "invalid_api_key" {
		t.Errorf("revoked key: %d %s", code, b)
	}

	// Restart on the same data_dir: the rotated key works, the revoked one
	// does not.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := g.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	g2 := startGateway(t, cfg)
	if code, _, b := post(t, g2.url+"/v1/chat/completions", admChat, bearer(rot.Key)...); code != 200 {
		t.Errorf("rotated key after restart: %d %s", code, b)
	}
	if code, _, _ := post(t, g2.url+"/v1/chat/completions", admChat, bearer(gone.Key)...); code != 401 {
		t.Errorf("revoked key after restart: %d", code)
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "switchyard.db")); err != nil {
		t.Errorf("the SQLite store: %v", err)
	}
}

func TestRateLimitStageByHeader(t *testing.T) {
	g := startGateway(t, simConfig(`
routes:
  - name: r
    match: {model: "*"}
    chain:
      - ratelimit: {by: "header:x-user", rpm: 2}
`))
	for i := 0; i < 2; i++ {
		if code, _, b := post(t, g.url+"/v1/chat/completions", admChat, "x-user", "alice"); code != 200 {
			t.Fatalf("alice %d: %d %s", i, code, b)
		}
	}
	code, h, b := post(t, g.url+"/v1/chat/completions", admChat, "x-user", "alice")
	if e := decodeErr(t, b); code != 429 || !strings.Contains(e.Error.Message, "route `r` per header:x-user") || h.Get("retry-after") == "" {
		t.Errorf("alice 3: %d %s", code, b)
	}
	if code, h, b := post(t, g.url+"/v1/chat/completions", admChat, "x-user", "bob"); code != 200 || h.Get("x-ratelimit-limit-requests") != "2" {
		t.Errorf("bob: %d %s %v", code, b, h)
	}
	// No header: not limited by this stage.
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if code, _, b := post(t, g.url+"/v1/chat/completions", admChat); code != 200 {
				t.Errorf("no header: %d %s", code, b)
			}
		}()
	}
	wg.Wait()
}

func TestAdmissionConfigErrorsNameTheLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(path, []byte(simConfig(`
tenants: [{name: acme}]
keys:
  - {id: k1, sha256: `+keyHash("x")+`, tenant: ghost}
`)), 0o600)
	_, err := gateway.New(gateway.Options{ConfigPath: path})
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%s:16", path)) || !strings.Contains(err.Error(), `unknown tenant "ghost"`) {
		t.Errorf("error = %v", err)
	}
}

// TestAdminKeysSeenByASecondReplica: two gateways on one PostgreSQL store:
// a key made, rotated or revoked on one is seen by the other within its
// key_sync interval.
func TestAdminKeysSeenByASecondReplica(t *testing.T) {
	dsn := testsvc.Postgres(t)
	t.Setenv("TEST_ADMIN_TOKEN", "adm")
	t.Setenv("TEST_PG_DSN", dsn)
	cfg := `
listen: 127.0.0.1:0
server: {watch_interval: 0s}
admin: {listen: 127.0.0.1:0, token: "${TEST_ADMIN_TOKEN}"}
store: {postgres: {dsn: "${TEST_PG_DSN}"}, key_sync: 100ms}
backends:
  - {name: sim, kind: sim, sim: {model: sim-chat, profile: fast, itl: 1ms}}
models:
  - {name: sim-chat, targets: [{backend: sim}]}
tenants: [{name: acme}]
`
	a, b := startGateway(t, cfg), startGateway(t, cfg)
	admin := a.serveAdmin(t)
	auth := bearer("adm")
	// within polls b until the key gets want.
	within := func(key string, want int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			code, _, body := post(t, b.url+"/v1/chat/completions", admChat, bearer(key)...)
			if code == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("second replica: %d %s, want %d within 5s", code, body, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	code, _, body := call(t, "POST", admin+"/admin/keys", `{"id":"shared","tenant":"acme"}`, auth...)
	var made keyAnswer
	if err := json.Unmarshal(body, &made); code != 201 || err != nil {
		t.Fatalf("create: %d %s", code, body)
	}
	within(made.Key, 200)
	code, _, body = call(t, "POST", admin+"/admin/keys/shared/rotate", "", auth...)
	var rot keyAnswer
	if err := json.Unmarshal(body, &rot); code != 200 || err != nil {
		t.Fatalf("rotate: %d %s", code, body)
	}
	within(rot.Key, 200)
	within(made.Key, 401)
	if code, _, body := call(t, "DELETE", admin+"/admin/keys/shared", "", auth...); code != 200 {
		t.Fatalf("revoke: %d %s", code, body)
	}
	within(rot.Key, 401)
}
