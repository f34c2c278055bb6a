package gateway_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

type embeddingAnswer struct {
	Object string `json:"object"`
	Data   []struct {
		Object    string          `json:"object"`
		Index     int             `json:"index"`
		Embedding json.RawMessage `json:"embedding"`
	} `json:"data"`
	Model string `json:"model"`
	Usage struct {
		PromptTokens int `json:"prompt_tokens"`
		TotalTokens  int `json:"total_tokens"`
	} `json:"usage"`
}

func batchConfig(simURL, batching string) string {
	return fmt.Sprintf(`
listen: 127.0.0.1:0
server: {watch_interval: 0s}
backends:
  - {name: up, url: %s, max_concurrency: 64}
models:
  - name: sim-embed
    targets: [{backend: up}]
    batching: %s
  - name: sim-chat
    targets: [{backend: up}]
    batching: %s
`, simURL, batching, batching)
}

// caller is one client's embeddings request and what it must get back.
type caller struct {
	body  string
	n     int      // inputs
	want  []string // the embeddings alone, by input
	got   embeddingAnswer
	batch int
	code  int
	raw   []byte
}

// TestBatchedEmbeddings sends many concurrent callers through a batching
// pool in front of a backend that runs one call at a time, and checks that
// each caller gets exactly the embeddings of its own inputs, in order,
// numbered from 0, as the backend answers them alone; that callers with
// other parameters never share a batch (their answers are in their own
// encoding); and that batches formed.
func TestBatchedEmbeddings(t *testing.T) {
	simURL, _ := startSim(t, map[string]string{"embed-call-overhead": "20ms", "embed-per-item": "0", "embed-concurrency": "1", "embed-dim": "8"})
	g := startGateway(t, batchConfig(simURL, "{max_in_flight: 1, max_batch_size: 16}"))

	var callers []*caller
	for i := range 24 {
		c := &caller{}
		switch i % 4 {
		case 0:
			c.body, c.n = fmt.Sprintf(`{"model":"sim-embed","input":"caller %d alone"}`, i), 1
		case 1:
			c.body, c.n = fmt.Sprintf(`{"model":"sim-embed","input":["caller %d one","caller %d two","caller %d three"]}`, i, i, i), 3
		case 2:
			c.body, c.n = fmt.Sprintf(`{"model":"sim-embed","input":["caller %d b64"],"encoding_format":"base64"}`, i), 1
		case 3:
			c.body, c.n = fmt.Sprintf(`{"model":"sim-embed","input":["caller %d dims a","caller %d dims b"],"dimensions":4,"user":"u%d"}`, i, i, i), 2
		}
		callers = append(callers, c)
	}
	// What the backend answers for each input alone.
	for _, c := range callers {
		var req map[string]any
		if err := json.Unmarshal([]byte(c.body), &req); err != nil {
			t.Fatal(err)
		}
		inputs, ok := req["input"].([]any)
		if !ok {
			inputs = []any{req["input"]}
		}
		for _, in := range inputs {
			req["input"] = in
			b, _ := json.Marshal(req)
			code, _, body := post(t, simURL+"/v1/embeddings", string(b))
			var a embeddingAnswer
			if code != 200 || json.Unmarshal(body, &a) != nil || len(a.Data) != 1 {
				t.Fatalf("direct: %d %s", code, body)
			}
			c.want = append(c.want, string(a.Data[0].Embedding))
		}
	}

	var wg sync.WaitGroup
	for _, c := range callers {
		wg.Go(func() {
			var h http.Header
			c.code, h, c.raw = post(t, g.url+"/v1/embeddings", c.body)
			c.batch, _ = strconv.Atoi(h.Get("X-Switchyard-Batch"))
			_ = json.Unmarshal(c.raw, &c.got)
		})
	}
	wg.Wait()
	shared := 0
	for i, c := range callers {
		if c.code != 200 {
			t.Fatalf("caller %d: %d %s", i, c.code, c.raw)
		}
		if c.got.Object != "list" || len(c.got.Data) != c.n {
			t.Fatalf("caller %d got %d embeddings, want %d: %s", i, len(c.got.Data), c.n, c.raw)
		}
		for j, d := range c.got.Data {
			if d.Index != j || d.Object != "embedding" {
				t.Fatalf("caller %d: entry %d has index %d", i, j, d.Index)
			}
			if string(d.Embedding) != c.want[j] {
				t.Fatalf("caller %d input %d: got another embedding than its own\n got %s\nwant %s", i, j, d.Embedding, c.want[j])
			}
		}
		if c.got.Usage.PromptTokens <= 0 || c.got.Usage.TotalTokens != c.got.Usage.PromptTokens {
			t.Errorf("caller %d usage %+v", i, c.got.Usage)
		}
		if c.batch > 1 {
			shared++
		}
	}
	if shared < len(callers)/2 {
		t.Fatalf("only %d of %d callers shared a batch", shared, len(callers))
	}

	// The batches were counted.
	_, m := get(t, g.url+"/metrics")
	for _, s := range []string{`switchyard_batches_total{model="sim-embed"}`, `switchyard_batch_items_bucket{model="sim-embed"`, `switchyard_batch_queue_delay_seconds_bucket{model="sim-embed"`} {
		if !strings.Contains(m, s) {
			t.Errorf("metrics lack %s", s)
		}
	}
}

// TestBatchRefusedGoesAlone: a batch the backend refuses (too many inputs
// together) is not failed for its callers: each goes alone, and only the
// one whose own request is bad gets the backend's error.
func TestBatchRefusedGoesAlone(t *testing.T) {
	simURL, _ := startSim(t, map[string]string{"embed-call-overhead": "20ms", "embed-per-item": "0", "embed-concurrency": "1", "embed-max-inputs": "3"})
	g := startGateway(t, batchConfig(simURL, "{max_in_flight: 1, max_batch_size: 16}"))
	bodies := []string{
		`{"model":"sim-embed","input":"first, alone"}`,
		`{"model":"sim-embed","input":["a1","a2"]}`,
		`{"model":"sim-embed","input":["b1","b2"]}`,
		`{"model":"sim-embed","input":["c1","c2","c3","c4"]}`, // too many for the backend by itself
	}
	codes := make([]int, len(bodies))
	raws := make([][]byte, len(bodies))
	var wg sync.WaitGroup
	for i, b := range bodies {
		wg.Go(func() { codes[i], _, raws[i] = post(t, g.url+"/v1/embeddings", b) })
	}
	wg.Wait()
	for i := range 3 {
		if codes[i] != 200 {
			t.Errorf("caller %d: %d %s", i, codes[i], raws[i])
		}
	}
	if codes[3] != 400 || !strings.Contains(string(raws[3]), "too many inputs") {
		t.Errorf("the bad caller: %d %s", codes[3], raws[3])
	}
}

func TestBatchQueueFull(t *testing.T) {
	simURL, _ := startSim(t, map[string]string{"embed-call-overhead": "50ms", "embed-per-item": "0", "embed-concurrency": "1"})
	g := startGateway(t, batchConfig(simURL, "{max_in_flight: 1, max_batch_size: 1, queue_size: 2}"))
	codes := make([]int, 8)
	hdrs := make([]http.Header, 8)
	var wg sync.WaitGroup
	for i := range codes {
		wg.Go(func() {
			codes[i], hdrs[i], _ = post(t, g.url+"/v1/embeddings", `{"model":"sim-embed","input":"x`+strconv.Itoa(i)+`"}`)
		})
	}
	wg.Wait()
	full := 0
	for i, c := range codes {
		switch c {
		case 200:
		case 503:
			full++
			if hdrs[i].Get("Retry-After") == "" {
				t.Errorf("a 503 without retry-after")
			}
		default:
			t.Errorf("caller %d: %d", i, c)
		}
	}
	if full == 0 {
		t.Fatal("8 callers on a queue of 2 behind one slow batch: none refused")
	}
}

// TestBatchedCompletions: legacy completions with batching.completions
// join their prompts; each caller gets the choices of its own prompts.
func TestBatchedCompletions(t *testing.T) {
	simURL, _ := startSim(t, map[string]string{"prefill-overhead": "20ms", "max-num-seqs": "1"})
	g := startGateway(t, batchConfig(simURL, "{max_in_flight: 1, completions: true}"))
	type answer struct {
		Choices []struct {
			Index int    `json:"index"`
			Text  string `json:"text"`
		} `json:"choices"`
		Usage struct {
			PromptTokens     int `json:"prompt_tokens"`
			CompletionTokens int `json:"completion_tokens"`
			TotalTokens      int `json:"total_tokens"`
		} `json:"usage"`
	}
	prompts := [][]string{{"alpha beta"}, {"gamma", "delta epsilon"}, {"zeta"}, {"eta theta iota", "kappa"}}
	want := make([][]string, len(prompts))
	for i, ps := range prompts {
		for _, p := range ps {
			code, _, body := post(t, simURL+"/v1/completions", `{"model":"sim-chat","prompt":"`+p+`","max_tokens":4,"temperature":0}`)
			var a answer
			if code != 200 || json.Unmarshal(body, &a) != nil || len(a.Choices) != 1 {
				t.Fatalf("direct: %d %s", code, body)
			}
			want[i] = append(want[i], a.Choices[0].Text)
		}
	}
	got := make([]answer, len(prompts))
	batches := make([]string, len(prompts))
	var wg sync.WaitGroup
	for i, ps := range prompts {
		b, _ := json.Marshal(map[string]any{"model": "sim-chat", "prompt": ps, "max_tokens": 4, "temperature": 0})
		wg.Go(func() {
			code, h, body := post(t, g.url+"/v1/completions", string(b))
			if code != 200 || json.Unmarshal(body, &got[i]) != nil {
				t.Errorf("caller %d: %d %s", i, code, body)
			}
			batches[i] = h.Get("X-Switchyard-Batch")
		})
	}
	wg.Wait()
	for i := range prompts {
		if len(got[i].Choices) != len(want[i]) {
			t.Fatalf("caller %d: %d choices, want %d", i, len(got[i].Choices), len(want[i]))
		}
		for j, c := range got[i].Choices {
			if c.Index != j || c.Text != want[i][j] {
				t.Fatalf("caller %d choice %d: %+v, want index %d text %q", i, j, c, j, want[i][j])
			}
		}
		if u := got[i].Usage; u.PromptTokens <= 0 || u.TotalTokens != u.PromptTokens+u.CompletionTokens {
			t.Errorf("caller %d usage %+v", i, u)
		}
	}
	t.Logf("batch sizes: %v", batches)
}

// TestBatchFailureFansOut: a batch whose backend cannot be reached fails
// every one of its callers with the gateway's error.
func TestBatchFailureFansOut(t *testing.T) {
	g := startGateway(t, batchConfig("http://127.0.0.1:1", "{max_in_flight: 1}"))
	codes := make([]int, 6)
	raws := make([][]byte, 6)
	var wg sync.WaitGroup
	for i := range codes {
		wg.Go(func() {
			codes[i], _, raws[i] = post(t, g.url+"/v1/embeddings", `{"model":"sim-embed","input":"x`+strconv.Itoa(i)+`"}`)
		})
	}
	wg.Wait()
	for i, c := range codes {
		if c != 502 && c != 503 || !strings.Contains(string(raws[i]), `"error":{"message":`) {
			t.Errorf("caller %d: %d %s", i, c, raws[i])
		}
	}
}

// TestBatchingAcrossReloads: requests keep succeeding while the config is
// reloaded under them (each generation has its own batcher; the retired
// one's is closed once its last request finished, which goleak checks at
// the end of the package's tests).
func TestBatchingAcrossReloads(t *testing.T) {
	simURL, _ := startSim(t, map[string]string{"embed-call-overhead": "5ms", "embed-per-item": "0", "embed-concurrency": "2"})
	g := startGateway(t, batchConfig(simURL, "{max_in_flight: 2}"))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	bad, good := 0, 0
	for i := range 8 {
		wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				code, _, body := post(t, g.url+"/v1/embeddings", fmt.Sprintf(`{"model":"sim-embed","input":"c%d n%d"}`, i, n))
				mu.Lock()
				if code != 200 {
					bad++
					t.Errorf("during reloads: %d %s", code, body)
				} else {
					good++
				}
				mu.Unlock()
			}
		})
	}
	for range 5 {
		time.Sleep(30 * time.Millisecond)
		if err := g.srv.Reload(); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(30 * time.Millisecond)
	close(stop)
	wg.Wait()
	if bad > 0 || good < 20 {
		t.Fatalf("across 5 reloads: %d requests failed, %d succeeded", bad, good)
	}
	t.Logf("%d requests across 5 reloads", good)
}
