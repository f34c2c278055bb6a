package gateway_test

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"switchyard/internal/gwtest"
)

// routingConfig is four embedded simulators with prefix caching behind one
// pool of the given strategy (and routing block).
func routingConfig(strategy, routing string) string {
	var b strings.Builder
	b.WriteString("listen: 127.0.0.1:0\nserver: {watch_interval: 0s}\nlog: {level: warn}\nbackends:\n")
	for i := range 4 {
		fmt.Fprintf(&b, "  - {name: gpu%d, kind: sim, sim: {model: sim-chat, profile: small, itl: 0s, prefill-per-token: 0s, prefix-caching: true, kv-blocks: 4096}}\n", i)
	}
	fmt.Fprintf(&b, "models:\n  - name: sim-chat\n    strategy: %s\n", strategy)
	if routing != "" {
		fmt.Fprintf(&b, "    routing: %s\n", routing)
	}
	b.WriteString("    targets: [{backend: gpu0}, {backend: gpu1}, {backend: gpu2}, {backend: gpu3}]\n")
	return b.String()
}

var cachedTokensRe = regexp.MustCompile(`"cached_tokens":(\d+)`)

// chat sends one chat completion with a system prompt and returns the
// backend that served it and the cached prompt tokens it reported.
func routedChat(t *testing.T, url, system, user string, header map[string]string) (backend string, cached int) {
	t.Helper()
	body := fmt.Sprintf(`{"model":"sim-chat","max_tokens":2,"user":%q,"messages":[{"role":"system","content":%q},{"role":"user","content":%q}]}`, user, system, user)
	req, _ := http.NewRequest("POST", url+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("content-type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	if m := cachedTokensRe.FindSubmatch(b); m != nil {
		cached, _ = strconv.Atoi(string(m[1]))
	}
	return resp.Header.Get("X-Switchyard-Backend"), cached
}

// tenantContext is a tenant's long shared system prompt (about 6 KB).
func tenantContext(tenant int) string {
	return strings.Repeat(fmt.Sprintf("Tenant %d handbook: policies, procedures and reference data. ", tenant), 100)
}

// TestInferenceAwarePrefixAffinity: requests that share a tenant's long
// system prompt land on the backend that was sent it before and find it
// cached there; round robin scatters them.
func TestInferenceAwarePrefixAffinity(t *testing.T) {
	run := func(strategy string) (spread map[int]map[string]bool, hitShare float64) {
		g := gwtest.Start(t, routingConfig(strategy, ""))
		defer g.Stop()
		spread = map[int]map[string]bool{}
		hits, later := 0, 0
		for round := range 8 {
			for tenant := range 3 {
				be, cached := routedChat(t, g.URL, tenantContext(tenant), fmt.Sprintf("question %d of user %d", round, tenant), nil)
				if spread[tenant] == nil {
					spread[tenant] = map[string]bool{}
				}
				spread[tenant][be] = true
				if round > 0 {
					later++
					if cached > 1000 {
						hits++
					}
				}
			}
		}
		return spread, float64(hits) / float64(later)
	}
	spread, hits := run("inference_aware")
	for tenant, bes := range spread {
		if len(bes) != 1 {
			t.Errorf("inference_aware: tenant %d served by %v, want one backend", tenant, bes)
		}
	}
	if hits < 1 {
		t.Errorf("inference_aware: %.2f of the repeated prefixes found cached, want all", hits)
	}
	rrSpread, rrHits := run("round_robin")
	scattered := 0
	for _, bes := range rrSpread {
		if len(bes) > 1 {
			scattered++
		}
	}
	if scattered == 0 || rrHits >= hits {
		t.Errorf("round_robin: %d tenants scattered, hit share %.2f (inference_aware %.2f): the comparison shows nothing", scattered, rrHits, hits)
	}
	t.Logf("cache hit share of repeated prefixes: inference_aware %.2f, round_robin %.2f", hits, rrHits)
}

// TestConsistentHashByHeader: one session header value always reaches the
// same backend; many values spread over the pool.
func TestConsistentHashByHeader(t *testing.T) {
	g := gwtest.Start(t, routingConfig("consistent_hash", "{session: {by: header, header: x-session-id}}"))
	seen := map[string]bool{}
	for s := range 24 {
		h := map[string]string{"x-session-id": fmt.Sprintf("conv-%d", s)}
		first, _ := routedChat(t, g.URL, "system", "hi", h)
		for range 3 {
			if be, _ := routedChat(t, g.URL, "system", "hi again", h); be != first {
				t.Fatalf("session conv-%d moved from %s to %s", s, first, be)
			}
		}
		seen[first] = true
	}
	if len(seen) < 3 {
		t.Errorf("24 sessions on %d of 4 backends", len(seen))
	}
}

// TestSaturatedPoolShedsSheddable: when every backend of an inference_aware
// pool reports, in its scraped metrics, a queue over the saturation bound,
// a sheddable key's request is refused at once with a 503, while a
// standard key's request is still served.
func TestSaturatedPoolShedsSheddable(t *testing.T) {
	var b strings.Builder
	b.WriteString("listen: 127.0.0.1:0\nserver: {watch_interval: 0s}\nlog: {level: warn}\nbackends:\n")
	for i := range 2 {
		// One sequence at a time, 25 ms a token: two requests of 40 tokens
		// keep one running and one waiting for a second.
		fmt.Fprintf(&b, "  - {name: gpu%d, kind: sim, sim: {model: sim-chat, profile: small, max-num-seqs: 1, itl: 25ms}, metrics: {interval: 20ms}}\n", i)
	}
	fmt.Fprintf(&b, `models:
  - name: sim-chat
    strategy: inference_aware
    routing: {saturation: {queue: 1}}
    targets: [{backend: gpu0}, {backend: gpu1}]
keys:
  - {id: batch, sha256: %q, priority: sheddable}
  - {id: app, sha256: %q}
`, keyHash("sk-batch"), keyHash("sk-app"))
	g := gwtest.Start(t, b.String())
	send := func(key string, maxTokens int) (int, string) {
		body := fmt.Sprintf(`{"model":"sim-chat","max_tokens":%d,"messages":[{"role":"user","content":"hello"}]}`, maxTokens)
		req, _ := http.NewRequest("POST", g.URL+"/v1/chat/completions", strings.NewReader(body))
		req.Header.Set("content-type", "application/json")
		req.Header.Set("authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			return 0, ""
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(out)
	}
	if code, body := send("sk-batch", 1); code != 200 {
		t.Fatalf("idle pool: sheddable request got %d %s", code, body)
	}
	// Four long requests: each backend runs one and queues one.
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if code, body := send("sk-app", 40); code != 200 {
				t.Errorf("background request: %d %s", code, body)
			}
		}()
	}
	defer wg.Wait()
	pool := g.Srv.Current().Router.Pools()[0]
	deadline := time.Now().Add(5 * time.Second)
	for !pool.Saturated(time.Now().UnixNano()) {
		if time.Now().After(deadline) {
			t.Fatal("the pool never reported saturated")
		}
		time.Sleep(10 * time.Millisecond)
	}
	code, body := send("sk-batch", 1)
	if code != 503 || !strings.Contains(body, "saturated") {
		t.Fatalf("saturated pool: sheddable request got %d %s, want 503", code, body)
	}
	if code, body := send("sk-app", 1); code != 200 {
		t.Fatalf("saturated pool: standard request got %d %s, want it served", code, body)
	}
}
