package gateway_test

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"testing"

	"switchyard/backends/sim"
	"switchyard/internal/spectest"
)

// kserveConfig serves the simulator's classifier (model sim-classifier on
// the backend) as the public model "classifier", batched or not.
func kserveConfig(simURL, batching string) string {
	b := ""
	if batching != "" {
		b = "\n    batching: " + batching
	}
	return fmt.Sprintf(`
listen: 127.0.0.1:0
server: {watch_interval: 0s}
backends:
  - {name: triton, kind: kserve, url: %s, max_concurrency: 64}
models:
  - name: classifier
    targets: [{backend: triton, model: sim-classifier}]%s
`, simURL, b)
}

type v2Answer struct {
	ModelName string `json:"model_name"`
	ID        string `json:"id"`
	Outputs   []struct {
		Name     string    `json:"name"`
		Datatype string    `json:"datatype"`
		Shape    []int     `json:"shape"`
		Data     []float64 `json:"data"`
	} `json:"outputs"`
	Error string `json:"error"`
}

// rows makes n rows of the classifier's 16 features, distinct per seed.
func rows(seed, n int) [][]float32 {
	out := make([][]float32, n)
	for i := range out {
		out[i] = make([]float32, 16)
		for j := range out[i] {
			out[i][j] = float32(math.Sin(float64(seed*131+i*17+j))) * 3
		}
	}
	return out
}

func inferBody(id string, rs [][]float32) string {
	var flat []float32
	for _, r := range rs {
		flat = append(flat, r...)
	}
	b, _ := json.Marshal(map[string]any{"id": id, "inputs": []any{map[string]any{
		"name": "input", "datatype": "FP32", "shape": []int{len(rs), 16}, "data": flat}}})
	return string(b)
}

// checkRows checks that a caller's answer holds exactly the classifier's
// answers for its own rows.
func checkRows(t *testing.T, who string, a v2Answer, rs [][]float32) {
	t.Helper()
	c := sim.NewClassifier("sim-classifier", 16, 4)
	probs := make([]float32, 4)
	for _, o := range a.Outputs {
		if len(o.Shape) == 0 || o.Shape[0] != len(rs) {
			t.Fatalf("%s: output %s shape %v for %d rows", who, o.Name, o.Shape, len(rs))
		}
	}
	for _, o := range a.Outputs {
		for i, r := range rs {
			label := c.Classify(probs, r)
			switch o.Name {
			case "label":
				if int64(o.Data[i]) != label {
					t.Fatalf("%s row %d: label %v, want %d: another caller's row?", who, i, o.Data[i], label)
				}
			case "probabilities":
				for k := range 4 {
					if math.Abs(o.Data[i*4+k]-float64(probs[k])) > 1e-5 {
						t.Fatalf("%s row %d: probabilities %v, want %v", who, i, o.Data[i*4:i*4+4], probs)
					}
				}
			}
		}
	}
}

func TestKServeEndpoints(t *testing.T) {
	simURL, _ := startSim(t, map[string]string{"classifier-model": "sim-classifier"})
	g := startGateway(t, kserveConfig(simURL, ""))

	for _, tc := range []struct {
		path   string
		code   int
		has    string
		schema string
	}{
		{"/v2/health/live", 200, `"live":true`, ""},
		{"/v2/health/ready", 200, `"ready":true`, ""},
		{"/v2", 200, `"name":"switchyard"`, "metadata_server_response"},
		{"/v2/models/classifier", 200, `"name":"classifier"`, "metadata_model_response"},
		{"/v2/models/classifier/versions/1", 200, `"name":"classifier"`, "metadata_model_response"},
		{"/v2/models/classifier/ready", 200, `"ready":true`, ""},
		{"/v2/models/nope", 404, `"error":"The model`, "metadata_model_error_response"},
		{"/v2/models/classifier/nothing", 404, `"error":"unknown path`, ""},
	} {
		code, body := get(t, g.url+tc.path)
		if code != tc.code || !strings.Contains(body, tc.has) {
			t.Errorf("GET %s: %d %s, want %d with %s", tc.path, code, body, tc.code, tc.has)
		}
		if tc.schema != "" {
			spectest.CheckOIP(t, tc.schema, []byte(body))
		}
	}

	// Inference through the gateway, unbatched: the public model name in
	// the answer, the caller's id echoed, the rows right.
	rs := rows(1, 3)
	code, _, body := post(t, g.url+"/v2/models/classifier/infer", inferBody("req-1", rs))
	var a v2Answer
	if code != 200 || json.Unmarshal(body, &a) != nil {
		t.Fatalf("infer: %d %s", code, body)
	}
	spectest.CheckOIP(t, "inference_response", body)
	if a.ModelName != "classifier" || a.ID != "req-1" {
		t.Errorf("model_name %q id %q", a.ModelName, a.ID)
	}
	checkRows(t, "unbatched", a, rs)

	// Bad input: the gateway's own clear errors, in the protocol's form.
	for _, tc := range []struct{ name, body, has string }{
		{"length", `{"inputs":[{"name":"input","datatype":"FP32","shape":[2,16],"data":[1,2,3]}]}`, "needs 32"},
		{"datatype", `{"inputs":[{"name":"input","datatype":"FP31","shape":[1,1],"data":[1]}]}`, "datatype"},
		{"not json", `{"inputs":`, "JSON"},
		{"no inputs", `{"id":"x"}`, "inputs"},
	} {
		code, _, body := post(t, g.url+"/v2/models/classifier/infer", tc.body)
		var e struct{ Error string }
		if code != 400 || json.Unmarshal(body, &e) != nil || !strings.Contains(e.Error, tc.has) {
			t.Errorf("%s: %d %s, want 400 with %q", tc.name, code, body, tc.has)
			continue
		}
		spectest.CheckOIP(t, "inference_error_response", body)
	}
	// A shape the model refuses: the backend's error, passed through.
	code, _, body = post(t, g.url+"/v2/models/classifier/infer", inferBody("x", [][]float32{{1, 2}}))
	if code != 400 || !strings.Contains(string(body), `"error"`) {
		t.Errorf("wrong width: %d %s", code, body)
	}
}

func TestKServeAuthErrors(t *testing.T) {
	simURL, _ := startSim(t, map[string]string{"classifier-model": "sim-classifier"})
	cfg := kserveConfig(simURL, "") + `
keys:
  - {id: a, sha256: ` + keyHash("sk-a") + `}
`
	g := startGateway(t, cfg)
	code, _, body := post(t, g.url+"/v2/models/classifier/infer", inferBody("x", rows(1, 1)))
	if code != 401 || !strings.HasPrefix(string(body), `{"error":"`) {
		t.Fatalf("without a key: %d %s", code, body)
	}
	code, _, body = post(t, g.url+"/v2/models/classifier/infer", inferBody("x", rows(1, 1)), "Authorization", "Bearer sk-a")
	if code != 200 {
		t.Fatalf("with a key: %d %s", code, body)
	}
	if code, body := get(t, g.url+"/v2"); code != 401 {
		t.Fatalf("server metadata without a key: %d %s", code, body)
	}
}

// TestKServeBatched sends concurrent callers with different batch sizes
// through a batching pool in front of a classifier that runs one call at a
// time: each gets exactly its own rows' answers and its own id; callers
// whose tensors have another shape are never merged with them.
func TestKServeBatched(t *testing.T) {
	simURL, _ := startSim(t, map[string]string{"classifier-model": "sim-classifier",
		"classifier-call-overhead": "20ms", "classifier-per-item": "0", "classifier-concurrency": "1"})
	g := startGateway(t, kserveConfig(simURL, "{max_in_flight: 1, max_batch_size: 32}"))
	type call struct {
		rs    [][]float32
		body  string
		code  int
		raw   []byte
		batch int
	}
	var calls []*call
	for i := range 20 {
		rs := rows(i+10, 1+i%3)
		calls = append(calls, &call{rs: rs, body: inferBody("c"+strconv.Itoa(i), rs)})
	}
	// A caller whose rows are 8 wide: another key, never merged (the
	// model refuses it alone).
	odd := &call{body: `{"inputs":[{"name":"input","datatype":"FP32","shape":[1,8],"data":[1,2,3,4,5,6,7,8]}]}`}
	var wg sync.WaitGroup
	for _, c := range append(calls, odd) {
		wg.Go(func() {
			code, h, raw := post(t, g.url+"/v2/models/classifier/infer", c.body)
			c.code, c.raw = code, raw
			c.batch, _ = strconv.Atoi(h.Get("X-Switchyard-Batch"))
		})
	}
	wg.Wait()
	shared := 0
	for i, c := range calls {
		var a v2Answer
		if c.code != 200 || json.Unmarshal(c.raw, &a) != nil {
			t.Fatalf("caller %d: %d %s", i, c.code, c.raw)
		}
		spectest.CheckOIP(t, "inference_response", c.raw)
		if a.ID != "c"+strconv.Itoa(i) || a.ModelName != "classifier" {
			t.Fatalf("caller %d: id %q model %q", i, a.ID, a.ModelName)
		}
		checkRows(t, "caller "+strconv.Itoa(i), a, c.rs)
		if c.batch > 1 {
			shared++
		}
	}
	if shared < len(calls)/2 {
		t.Fatalf("only %d of %d callers shared a batch", shared, len(calls))
	}
	if odd.code != 400 || odd.batch > 1 {
		t.Fatalf("the 8-wide caller: %d (batch %d) %s", odd.code, odd.batch, odd.raw)
	}
}

// TestKServeOversized: a request larger than a batch goes alone, and a
// batch larger than the model takes gets the model's clear error.
func TestKServeOversized(t *testing.T) {
	simURL, _ := startSim(t, map[string]string{"classifier-model": "sim-classifier", "classifier-max-batch": "8"})
	g := startGateway(t, kserveConfig(simURL, "{max_batch_size: 4}"))
	code, h, body := post(t, g.url+"/v2/models/classifier/infer", inferBody("big", rows(3, 6)))
	if code != 200 || h.Get("X-Switchyard-Batch") != "" {
		t.Fatalf("6 rows over max_batch_size 4: %d (batch %q) %s", code, h.Get("X-Switchyard-Batch"), body)
	}
	var a v2Answer
	if err := json.Unmarshal(body, &a); err != nil {
		t.Fatal(err)
	}
	checkRows(t, "big", a, rows(3, 6))
	code, _, body = post(t, g.url+"/v2/models/classifier/infer", inferBody("huge", rows(4, 9)))
	if code != 400 || !strings.Contains(string(body), `{"error":`) || !strings.Contains(string(body), "9") {
		t.Fatalf("9 rows over the model's 8: %d %s", code, body)
	}
	spectest.CheckOIP(t, "inference_error_response", body)
}
