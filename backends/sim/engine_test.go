package sim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// testOptions are exact, round numbers for timing assertions.
func testOptions(t *testing.T, kv map[string]string) Options {
	t.Helper()
	m := map[string]string{
		"model": "m", "max-num-seqs": "4", "max-waiting": "8", "kv-blocks": "1024", "block-size": "16",
		"prefill-overhead": "0", "prefill-per-token": "1ms", "itl": "10ms", "itl-per-seq": "1ms",
		"output-len": "max", "disconnect-check": "0",
	}
	for k, v := range kv {
		m[k] = v
	}
	o, err := OptionsFromMap(m)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func newTestServer(t *testing.T, o Options) *Server {
	t.Helper()
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// result is the timing of one simulated request.
type result struct {
	ttft  time.Duration
	steps []time.Duration // time of each token step since arrival
	err   error
	req   *genRequest
	group *group
}

// simulate runs a chat request body through the engine (no HTTP).
func simulate(s *Server, body string) result {
	r, e := s.parseChat([]byte(body))
	if e != nil {
		return result{err: e}
	}
	g := &group{seqs: r.seqs, arrival: time.Now()}
	sl := &sleeper{}
	defer sl.stop()
	if err := s.eng.admit(s.ctx, g, sl); err != nil {
		return result{err: err, req: r}
	}
	res := result{req: r, group: g}
	err := s.eng.run(s.ctx, g, sl, 1, func(step int) error {
		res.steps = append(res.steps, time.Since(g.arrival))
		return nil
	})
	res.err = err
	if len(res.steps) > 0 {
		res.ttft = res.steps[0]
	}
	return res
}

func chatBody(prompt string, maxTokens int) string {
	return fmt.Sprintf(`{"model":"m","messages":[{"role":"user","content":%q}],"max_tokens":%d}`, prompt, maxTokens)
}

// words returns a prompt of n distinct one-token words.
func wordsPrompt(n int, salt string) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "%s%d ", salt, i%1000)
	}
	return b.String()
}

func TestPrefixCacheHitLowersTTFT(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newTestServer(t, testOptions(t, nil))
		prompt := wordsPrompt(200, "w") // "w123" is one token: 200 tokens + 3 template tokens
		first := simulate(s, chatBody(prompt, 2))
		second := simulate(s, chatBody(prompt, 2))
		if first.err != nil || second.err != nil {
			t.Fatal(first.err, second.err)
		}
		pt := first.req.usage.prompt
		if pt != 203 {
			t.Fatalf("prompt tokens = %d, want 203", pt)
		}
		if want := time.Duration(pt) * time.Millisecond; first.ttft != want {
			t.Errorf("cold TTFT = %v, want %v (all %d tokens prefilled)", first.ttft, want, pt)
		}
		cached := 203 / 16 * 16
		if got := second.group.seqs[0].cached; got != cached {
			t.Errorf("cached tokens = %d, want %d", got, cached)
		}
		if want := time.Duration(pt-cached) * time.Millisecond; second.ttft != want {
			t.Errorf("warm TTFT = %v, want %v", second.ttft, want)
		}
		// A different prompt misses.
		third := simulate(s, chatBody(wordsPrompt(200, "x"), 2))
		if third.ttft != first.ttft {
			t.Errorf("TTFT of an unrelated prompt = %v, want %v", third.ttft, first.ttft)
		}
		out := metricsText(s)
		for _, want := range []string{
			`vllm:prefix_cache_queries_total{model_name="m"} 609`,
			fmt.Sprintf(`vllm:prefix_cache_hits_total{model_name="m"} %d`, cached),
			"# TYPE vllm:prefix_cache_hits_total counter",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("metrics lack %q:\n%s", want, out)
			}
		}
	})
}

func TestPrefixCacheDisabled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newTestServer(t, testOptions(t, map[string]string{"prefix-caching": "false"}))
		p := wordsPrompt(100, "w")
		a, b := simulate(s, chatBody(p, 1)), simulate(s, chatBody(p, 1))
		if a.ttft != b.ttft || a.ttft != 103*time.Millisecond {
			t.Errorf("TTFTs = %v, %v; want both 103ms without a prefix cache", a.ttft, b.ttft)
		}
	})
}

func TestITLGrowsWithRunningSequences(t *testing.T) {
	for _, running := range []int{1, 2, 4} {
		t.Run(fmt.Sprint(running), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := newTestServer(t, testOptions(t, map[string]string{"prefill-per-token": "0"}))
				results := make([]result, running)
				var wg sync.WaitGroup
				for i := range running {
					wg.Go(func() { results[i] = simulate(s, chatBody(fmt.Sprint("hello ", i), 5)) })
				}
				wg.Wait()
				want := 10*time.Millisecond + time.Duration(running)*time.Millisecond
				for _, r := range results {
					if r.err != nil {
						t.Fatal(r.err)
					}
					// From the second interval on, every sequence is running.
					for k := 2; k < len(r.steps); k++ {
						if got := r.steps[k] - r.steps[k-1]; got != want {
							t.Fatalf("ITL with %d running = %v, want %v", running, got, want)
						}
					}
				}
			})
		})
	}
}

func TestSpeedScalesTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := testOptions(t, map[string]string{"speed": "0.5"})
		s := newTestServer(t, o)
		r := simulate(s, chatBody("a b c", 3)) // 3 + 3 template tokens
		if r.ttft != 12*time.Millisecond {
			t.Errorf("TTFT at half speed = %v, want 12ms", r.ttft)
		}
		if d := r.steps[1] - r.steps[0]; d != 22*time.Millisecond {
			t.Errorf("ITL at half speed = %v, want 22ms", d)
		}
	})
}

func TestQueueBeyondMaxNumSeqs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newTestServer(t, testOptions(t, map[string]string{"max-num-seqs": "2", "max-waiting": "3", "prefill-per-token": "0"}))
		results := make([]result, 6)
		var wg sync.WaitGroup
		for i := range 5 {
			wg.Go(func() { results[i] = simulate(s, chatBody(fmt.Sprint("p", i), 10)) })
			synctest.Wait() // arrivals in order
		}
		if r, w := s.eng.runningN.Load(), s.eng.waitingN.Load(); r != 2 || w != 3 {
			t.Fatalf("running, waiting = %d, %d; want 2, 3", r, w)
		}
		out := metricsText(s)
		for _, want := range []string{`vllm:num_requests_waiting{model_name="m"} 3`, `vllm:num_requests_running{model_name="m"} 2`} {
			if !strings.Contains(out, want) {
				t.Errorf("metrics lack %q:\n%s", want, out)
			}
		}
		// The queue is full: the next request is refused at once.
		results[5] = simulate(s, chatBody("late", 10))
		if !errors.Is(results[5].err, errQueueFull) {
			t.Fatalf("request beyond max-waiting: err = %v, want errQueueFull", results[5].err)
		}
		wg.Wait()
		// The first request's first ITL saw 1 running sequence (11ms), the
		// next 8 saw 2 (12ms). The queued start when a slot frees.
		if got := results[0].steps[9]; got != 107*time.Millisecond {
			t.Errorf("first request ends at %v, want 107ms", got)
		}
		for i := 2; i < 5; i++ {
			if results[i].ttft < 107*time.Millisecond {
				t.Errorf("queued request %d has TTFT %v; it should have waited for a slot (>= 107ms)", i, results[i].ttft)
			}
		}
		if s.eng.waitingN.Load() != 0 || s.eng.runningN.Load() != 0 {
			t.Errorf("engine not idle after all requests")
		}
	})
}

func TestKVFullMakesRequestsWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// 8 blocks of 16 tokens; each request needs 6 blocks (6 prompt + 90 output tokens).
		s := newTestServer(t, testOptions(t, map[string]string{"kv-blocks": "8", "prefill-per-token": "0", "itl-per-seq": "0"}))
		var a, b result
		var wg sync.WaitGroup
		wg.Go(func() { a = simulate(s, chatBody("one two six", 90)) })
		synctest.Wait()
		wg.Go(func() { b = simulate(s, chatBody("four five ten", 90)) })
		synctest.Wait()
		if w := s.eng.waitingN.Load(); w != 1 {
			t.Fatalf("waiting = %d, want 1: the KV cache is full", w)
		}
		if u := s.eng.kvUsage(); u != 6.0/8 {
			t.Errorf("kv usage = %v, want 0.75", u)
		}
		wg.Wait()
		if want := 89 * 10 * time.Millisecond; a.steps[89] != want || b.ttft != want {
			t.Errorf("first ends at %v, second starts at %v; want both %v", a.steps[89], b.ttft, want)
		}
	})
}

func TestRequestTooLongIsRefused(t *testing.T) {
	s := newTestServer(t, testOptions(t, map[string]string{"max-model-len": "100", "kv-blocks": "4"}))
	for name, body := range map[string]string{
		"max_tokens beyond max-model-len": chatBody("hi", 99),
		"more blocks than the cache":      chatBody("hi", 90),
		"prompt beyond max-model-len":     chatBody(wordsPrompt(120, "w"), 1),
	} {
		if _, e := s.parseChat([]byte(body)); e == nil || e.status != 400 {
			t.Errorf("%s: err = %v, want a 400", name, e)
		}
	}
}

func TestCancelledWaitLeavesQueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newTestServer(t, testOptions(t, map[string]string{"max-num-seqs": "1", "prefill-per-token": "0"}))
		var wg sync.WaitGroup
		wg.Go(func() { simulate(s, chatBody("long", 100)) })
		synctest.Wait()
		r, _ := s.parseChat([]byte(chatBody("queued", 5)))
		g := &group{seqs: r.seqs, arrival: time.Now()}
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() { errc <- s.eng.admit(ctx, g, &sleeper{}) }()
		synctest.Wait()
		if s.eng.waitingN.Load() != 1 {
			t.Fatal("request not queued")
		}
		cancel()
		if err := <-errc; err == nil {
			t.Fatal("cancelled wait returned nil")
		}
		if s.eng.waitingN.Load() != 0 {
			t.Error("cancelled request still counted as waiting")
		}
		wg.Wait()
	})
}

func TestStallAndSlowFaultTiming(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newTestServer(t, testOptions(t, map[string]string{"prefill-per-token": "0", "stall": "1h"}))
		r, _ := s.parseChat([]byte(chatBody("x", 3)))
		g := &group{seqs: r.seqs, arrival: time.Now()}
		sl := &sleeper{}
		// Stall: a sleep before admission that ends early when the server closes.
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(time.Minute, cancel)
		start := time.Now()
		if err := sl.sleep(ctx, s.o.Stall); err == nil || time.Since(start) != time.Minute {
			t.Errorf("stall ended after %v with %v; want an error after 1m", time.Since(start), err)
		}
		// Slow: ITL times slow-factor.
		if err := s.eng.admit(s.ctx, g, sl); err != nil {
			t.Fatal(err)
		}
		var steps []time.Duration
		s.eng.run(s.ctx, g, sl, s.o.SlowFactor, func(int) error { steps = append(steps, time.Since(g.arrival)); return nil })
		if d := steps[1] - steps[0]; d != 110*time.Millisecond {
			t.Errorf("slow ITL = %v, want 110ms", d)
		}
	})
}

func TestEmbeddingsBatchIsCheaper(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newTestServer(t, testOptions(t, map[string]string{
			"embed-call-overhead": "5ms", "embed-per-item": "100us", "embed-concurrency": "4"}))
		start := time.Now()
		if err := s.embedCost(&sleeper{}, 64, 1); err != nil {
			t.Fatal(err)
		}
		batched := time.Since(start)
		start = time.Now()
		var wg sync.WaitGroup
		for range 64 {
			wg.Go(func() { s.embedCost(&sleeper{}, 1, 1) })
		}
		wg.Wait()
		single := time.Since(start)
		if batched != 5*time.Millisecond+6400*time.Microsecond {
			t.Errorf("one call with 64 inputs took %v, want 11.4ms", batched)
		}
		if single != 16*5100*time.Microsecond {
			t.Errorf("64 calls with 1 input took %v, want 16 rounds of 5.1ms = 81.6ms", single)
		}
		if batched >= single {
			t.Errorf("batched %v is not cheaper than single calls %v", batched, single)
		}
	})
}

func metricsText(s *Server) string {
	var b bytes.Buffer
	s.m.write(&b)
	return b.String()
}

func TestHeterogeneousPool(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := testOptions(t, map[string]string{"listen": "127.0.0.1:1,127.0.0.1:2", "speed": "1,0.25"})
		var ttft []time.Duration
		for _, so := range o.PerServer() {
			s := newTestServer(t, so)
			ttft = append(ttft, simulate(s, chatBody("a b c d", 2)).ttft)
		}
		if ttft[0] != 7*time.Millisecond || ttft[1] != 28*time.Millisecond {
			t.Errorf("TTFTs %v, want [7ms 28ms]: the second server is 4x slower", ttft)
		}
	})
}
