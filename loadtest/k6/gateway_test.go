package k6_test

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"switchyard/internal/gwtest"
)

// k6 itself cannot run here (its licence keeps it out of the project's
// tools), so ratelimit.js meets the real gateway this way: the test sends
// the script's two phases at its rates to a Switchyard with a limit, records
// every answer (status, headers, body), and evaluates the script's own
// checks and thresholds over them as k6 would. They pass against the limit
// and fail against the same gateway without it.

const limitedKey = "sk-k6-limited"

// serveGateway runs a gateway on the embedded simulator with the key's
// limits (none when limits is empty) and returns its URL.
func serveGateway(t *testing.T, limits string) string {
	t.Helper()
	sum := sha256.Sum256([]byte(limitedKey))
	key := "  - {id: k6, sha256: " + hex.EncodeToString(sum[:])
	if limits != "" {
		key += ", limits: " + limits
	}
	cfg := `
listen: 127.0.0.1:0
server: {watch_interval: 0s}
log: {level: error, requests: false}
backends:
  - {name: sim, kind: sim, sim: {model: sim-chat, profile: fast}}
models:
  - {name: sim-chat, targets: [{backend: sim}]}
keys:
` + key + "}\n"
	return serveConfig(t, cfg)
}

// serveConfig runs a gateway of cfg and returns its URL.
func serveConfig(t *testing.T, cfg string) string {
	t.Helper()
	return gwtest.Start(t, cfg).URL
}

// record sends n requests at rate a second, as the script's iteration does,
// and returns the answers as iterations of scenario.
func record(t *testing.T, url, scenario string, n int, rate float64) []iteration {
	t.Helper()
	body := `{"model":"sim-chat","messages":[{"role":"user","content":"ping"}],"max_tokens":1}`
	every := time.Duration(float64(time.Second) / rate)
	start := time.Now()
	out := make([]iteration, 0, n)
	for i := 0; i < n; i++ {
		time.Sleep(time.Until(start.Add(time.Duration(i) * every)))
		out = append(out, send(t, url, body, scenario))
	}
	return out
}

// send posts one chat request with the test key and records the answer.
func send(t *testing.T, url, body, scenario string) iteration {
	t.Helper()
	req, _ := http.NewRequest("POST", url+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+limitedKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	h := map[string]string{}
	for k, v := range resp.Header {
		h[k] = strings.Join(v, ", ")
	}
	return iteration{Scenario: scenario, Response: response{Status: resp.StatusCode, Body: string(b), Headers: h}}
}

func TestRateLimitScriptAgainstTheGateway(t *testing.T) {
	if testing.Short() {
		t.Skip("paced requests for about 8 s")
	}
	// LIMIT=10 req/s: rpm 600 with a burst of 10. The script's phases, shortened:
	// under at LIMIT/2 for 2 s, a pause for the bucket to refill, over at
	// RATE=30 for 3 s.
	env := map[string]string{"LIMIT": "10", "RATE": "30"}
	phases := func(url string) run {
		under := record(t, url, "under", 10, 5)
		time.Sleep(1500 * time.Millisecond)
		over := record(t, url, "over", 90, 30)
		return run{Env: env, Iterations: append(under, over...)}
	}

	limited := phases(serveGateway(t, "{rpm: 600, burst: 10}"))
	r := runNode(t, map[string]any{"ratelimit.js": limited}, "ratelimit.js")["ratelimit.js"]
	if r.Error != "" {
		t.Fatal(r.Error)
	}
	if f := failedThresholds(r); len(f) > 0 {
		t.Errorf("against the limit, thresholds failed: %q\n%+v", f, r.ThresholdResults)
	}
	n429 := 0
	for _, it := range limited.Iterations {
		if it.Response.Status == 429 {
			n429++
		}
	}
	t.Logf("against rpm 600 burst 10: %d of %d refused", n429, len(limited.Iterations))

	open := run{Env: env, Iterations: append(record(t, serveGateway(t, ""), "under", 10, 1000),
		record(t, serveGateway(t, ""), "over", 90, 1000)...)}
	r = runNode(t, map[string]any{"ratelimit.js": open}, "ratelimit.js")["ratelimit.js"]
	if r.Error != "" {
		t.Fatal(r.Error)
	}
	f := failedThresholds(r)
	if !slices.Contains(f, "limited_responses: count>0") {
		t.Errorf("without the limit, thresholds failed: %q; want limited_responses to fail", f)
	}
}

// TestCacheScriptAgainstTheGateway: cache.js's setup and iterations sent to
// a real Switchyard with the cache stage, the answers replayed through the
// script's checks and thresholds: they pass; against the same gateway
// without the stage, they fail.
func TestCacheScriptAgainstTheGateway(t *testing.T) {
	serve := func(chain string) string {
		sum := sha256.Sum256([]byte(limitedKey))
		cfg := `
listen: 127.0.0.1:0
server: {watch_interval: 0s}
log: {level: error, requests: false}
backends:
  - {name: sim, kind: sim, sim: {model: sim-chat, profile: fast, output-len: "uniform:20-60"}}
models:
  - {name: sim-chat, targets: [{backend: sim}]}
keys:
  - {id: k6, sha256: ` + hex.EncodeToString(sum[:]) + `}
routes:
  - {name: default, match: {model: "*"}, chain: ` + chain + `}
`
		return serveConfig(t, cfg)
	}
	ask := func(url string, i int, scenario string) iteration {
		body := `{"model":"sim-chat","messages":[{"role":"user","content":"Cache test prompt number ` + strconv.Itoa(i) +
			`: what is the capital of France?"}],"max_tokens":128,"temperature":0}`
		return send(t, url, body, scenario)
	}
	rec := func(url string) run {
		var r run
		for i := 0; i < 5; i++ {
			r.Setup = append(r.Setup, ask(url, i, "").Response)
		}
		for i := 0; i < 20; i++ {
			r.Iterations = append(r.Iterations, ask(url, i%5, "repeat"))
		}
		return r
	}
	r := runNode(t, map[string]any{"cache.js": rec(serve("[cache]"))}, "cache.js")["cache.js"]
	if r.Error != "" {
		t.Fatal(r.Error)
	}
	if f := failedThresholds(r); len(f) > 0 {
		t.Errorf("against the cache, thresholds failed: %q\n%+v", f, r.ThresholdResults)
	}
	r = runNode(t, map[string]any{"cache.js": rec(serve("[]"))}, "cache.js")["cache.js"]
	if f := failedThresholds(r); !slices.Contains(f, "cache_hits: count>0") {
		t.Errorf("without the cache, thresholds failed: %q; want cache_hits to fail", f)
	}
}
