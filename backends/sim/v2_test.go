package sim

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/valyala/fasthttp"
)

// v2Options are the classifier options of the v2 tests: model "clf" taking
// rows of 4 features into 3 classes.
var v2Options = map[string]string{"classifier-model": "clf", "classifier-features": "4", "classifier-classes": "3", "classifier-max-batch": "64"}

func v2Server(t *testing.T, kv map[string]string) (*Server, string) {
	t.Helper()
	m := map[string]string{}
	for k, v := range v2Options {
		m[k] = v
	}
	for k, v := range kv {
		m[k] = v
	}
	return startServer(t, m)
}

func request(t *testing.T, method, url, body string, hdr ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// v2ErrorBody checks that an answer is the spec's error object, exactly
// {"error": string}, and returns the message.
func v2ErrorBody(t *testing.T, r *http.Response) string {
	t.Helper()
	raw := readBody(t, r)
	var v map[string]any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("error body %q: %v", raw, err)
	}
	msg, ok := v["error"].(string)
	if !ok || len(v) != 1 || msg == "" {
		t.Fatalf("error body %s: want {\"error\": message}", raw)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("error content-type %q", ct)
	}
	return msg
}

type v2Tensor struct {
	Name     string          `json:"name"`
	Datatype string          `json:"datatype"`
	Shape    []int64         `json:"shape"`
	Data     json.RawMessage `json:"data"`
}

type v2Response struct {
	ModelName    string     `json:"model_name"`
	ModelVersion string     `json:"model_version"`
	ID           *string    `json:"id"`
	Outputs      []v2Tensor `json:"outputs"`
}

// answer is one row's classification.
type answer struct {
	probs []float32
	label int64
}

// rows splits a response into its rows' answers and checks the tensors'
// names, types and shapes.
func (r *v2Response) rows(t *testing.T, n, classes int) []answer {
	t.Helper()
	if len(r.Outputs) != 2 {
		t.Fatalf("outputs %+v, want probabilities and label", r.Outputs)
	}
	p, l := r.Outputs[0], r.Outputs[1]
	if p.Name != "probabilities" || p.Datatype != "FP32" || fmt.Sprint(p.Shape) != fmt.Sprint([]int64{int64(n), int64(classes)}) ||
		l.Name != "label" || l.Datatype != "INT64" || fmt.Sprint(l.Shape) != fmt.Sprint([]int64{int64(n)}) {
		t.Fatalf("outputs %+v", r.Outputs)
	}
	var probs []float32
	var labels []int64
	if err := json.Unmarshal(p.Data, &probs); err != nil || len(probs) != n*classes {
		t.Fatalf("probabilities %s: %v", p.Data, err)
	}
	if err := json.Unmarshal(l.Data, &labels); err != nil || len(labels) != n {
		t.Fatalf("labels %s: %v", l.Data, err)
	}
	out := make([]answer, n)
	for i := range out {
		out[i] = answer{probs: probs[i*classes : (i+1)*classes], label: labels[i]}
	}
	return out
}

func decodeInfer(t *testing.T, r *http.Response) *v2Response {
	t.Helper()
	raw := readBody(t, r)
	if r.StatusCode != 200 || r.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("status %d, content-type %q: %s", r.StatusCode, r.Header.Get("Content-Type"), raw)
	}
	var v v2Response
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("%s: %v", raw, err)
	}
	return &v
}

// inferBody is an infer request for rows, with data nested or flat, and
// extra JSON members (",..." or "").
func inferBody(rows [][]float32, datatype string, nested bool, extra string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `{"inputs":[{"name":"input","datatype":%q,"shape":[%d,%d],"data":[`, datatype, len(rows), len(rows[0]))
	for i, row := range rows {
		if i > 0 {
			b.WriteByte(',')
		}
		if nested {
			b.WriteByte('[')
		}
		for j, x := range row {
			if j > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.FormatFloat(float64(x), 'g', -1, 32))
		}
		if nested {
			b.WriteByte(']')
		}
	}
	b.WriteString("]}]" + extra + "}")
	return b.String()
}

func TestV2Endpoints(t *testing.T) {
	_, url := v2Server(t, nil)
	meta := `{"name":"clf","versions":["1"],"platform":"onnx_onnxv1","inputs":[{"name":"input","datatype":"FP32","shape":[-1,4]}],"outputs":[{"name":"probabilities","datatype":"FP32","shape":[-1,3]},{"name":"label","datatype":"INT64","shape":[-1]}]}`
	cases := []struct {
		name, method, path string
		status             int
		body               string // the whole answer, or for errors a part of the message
		allow              string
	}{
		{"server metadata", "GET", "/v2", 200, `{"name":"switchyard-sim","version":"1","extensions":[]}`, ""},
		{"server metadata slash", "GET", "/v2/", 200, `{"name":"switchyard-sim","version":"1","extensions":[]}`, ""},
		{"live", "GET", "/v2/health/live", 200, `{"live":true}`, ""},
		{"live head", "HEAD", "/v2/health/live", 200, ``, ""},
		{"ready", "GET", "/v2/health/ready", 200, `{"live":true,"ready":true}`, ""},
		{"model metadata", "GET", "/v2/models/clf", 200, meta, ""},
		{"model metadata version", "GET", "/v2/models/clf/versions/1", 200, meta, ""},
		{"model ready", "GET", "/v2/models/clf/ready", 200, `{"name":"clf","ready":true}`, ""},
		{"model ready version", "GET", "/v2/models/clf/versions/1/ready", 200, `{"name":"clf","ready":true}`, ""},
		{"unknown model metadata", "GET", "/v2/models/nope", 404, `unknown model "nope"`, ""},
		{"unknown model ready", "GET", "/v2/models/nope/ready", 404, `unknown model "nope"`, ""},
		{"unknown model infer", "POST", "/v2/models/nope/infer", 404, `unknown model "nope"`, ""},
		{"unknown version", "GET", "/v2/models/clf/versions/2", 404, `unknown version "2"`, ""},
		{"unknown version infer", "POST", "/v2/models/clf/versions/7/infer", 404, `unknown version "7"`, ""},
		{"chat model is not a v2 model", "GET", "/v2/models/m", 404, `unknown model "m"`, ""},
		{"infer by GET", "GET", "/v2/models/clf/infer", 405, "not allowed", "POST"},
		{"metadata by POST", "POST", "/v2/models/clf", 405, "not allowed", "GET, HEAD"},
		{"live by POST", "POST", "/v2/health/live", 405, "not allowed", "GET, HEAD"},
		{"server metadata by DELETE", "DELETE", "/v2", 405, "not allowed", "GET, HEAD"},
		{"no such v2 path", "GET", "/v2/health", 404, "no such endpoint", ""},
		{"no model name", "GET", "/v2/models/", 404, "no such endpoint", ""},
		{"empty version", "GET", "/v2/models/clf/versions/", 404, "no such endpoint", ""},
		{"extra segment", "POST", "/v2/models/clf/infer/x", 404, "no such endpoint", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := request(t, c.method, url+c.path, "")
			if r.StatusCode != c.status {
				t.Fatalf("status %d, want %d: %s", r.StatusCode, c.status, readBody(t, r))
			}
			if c.allow != "" && r.Header.Get("Allow") != c.allow {
				t.Errorf("allow %q, want %q", r.Header.Get("Allow"), c.allow)
			}
			if c.status != 200 {
				if msg := v2ErrorBody(t, r); !strings.Contains(msg, c.body) {
					t.Errorf("error %q, want it to mention %q", msg, c.body)
				}
				return
			}
			if got := string(readBody(t, r)); got != c.body {
				t.Errorf("body\n%s\nwant\n%s", got, c.body)
			}
			if c.method == "GET" && r.Header.Get("Content-Type") != "application/json" {
				t.Errorf("content-type %q", r.Header.Get("Content-Type"))
			}
		})
	}
}

func TestV2WithoutClassifier(t *testing.T) {
	_, url := startServer(t, nil)
	for _, p := range []string{"/v2", "/v2/health/live", "/v2/health/ready"} {
		if r := request(t, "GET", url+p, ""); r.StatusCode != 200 {
			t.Errorf("GET %s: status %d", p, r.StatusCode)
		}
	}
	r := request(t, "POST", url+"/v2/models/clf/infer", inferBody([][]float32{{1, 2, 3, 4}}, "FP32", false, ""))
	if msg := v2ErrorBody(t, r); r.StatusCode != 404 || !strings.Contains(msg, "classifier-model") {
		t.Errorf("status %d %q, want 404 naming the classifier-model option", r.StatusCode, msg)
	}
}

func TestInferErrors(t *testing.T) {
	_, url := v2Server(t, nil)
	in := func(shape, datatype, data string) string {
		return `{"inputs":[{"name":"input","shape":` + shape + `,"datatype":"` + datatype + `","data":` + data + `}]}`
	}
	ok4 := `[1,2,3,4]`
	okIn := in(`[1,4]`, "FP32", ok4)
	withOutputs := func(outputs string) string { return strings.TrimSuffix(okIn, "}") + `,"outputs":` + outputs + "}" }
	cases := []struct {
		name, body string
		want       string // part of the error message
	}{
		{"bad json", `{"inputs":[`, "not valid JSON"},
		{"empty body", ``, "empty"},
		{"not an object", `[1,2]`, "invalid type"},
		{"no inputs", `{"inputs":[]}`, `want the tensor "input"`},
		{"inputs missing", `{"id":"1"}`, `want the tensor "input"`},
		{"unknown input", `{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]}`, `unknown input "x"`},
		{"input twice", `{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]},{"name":"input","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]}`, "twice"},
		{"id not a string", `{"id":42,"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]}`, `"id"`},
		{"rank 1", in(`[4]`, "FP32", ok4), "shape [4]: want [N, 4]"},
		{"rank 3", in(`[1,1,4]`, "FP32", ok4), "shape [1,1,4]"},
		{"wrong width", in(`[2,2]`, "FP32", ok4), "shape [2,2]: want [N, 4]"},
		{"zero rows", in(`[0,4]`, "FP32", `[]`), "at least 1"},
		{"negative rows", in(`[-1,4]`, "FP32", ok4), "at least 1"},
		{"fractional shape", in(`[1.5,4]`, "FP32", ok4), "shape"},
		{"batch too large", in(`[65,4]`, "FP32", ok4), "batch size 65 is larger than the model's maximum of 64"},
		{"unknown datatype", in(`[1,4]`, "FLOAT", ok4), `unknown datatype "FLOAT"`},
		{"lower-case datatype", in(`[1,4]`, "fp32", ok4), `unknown datatype "fp32"`},
		{"unsupported datatype", in(`[1,4]`, "BOOL", `[true,false,true,true]`), "BOOL is not supported"},
		{"bytes datatype", in(`[1,4]`, "BYTES", `["a","b","c","d"]`), "BYTES is not supported"},
		{"no data", `{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32"}]}`, "data is required"},
		{"data not an array", in(`[1,4]`, "FP32", `7`), "must be an array"},
		{"flat too short", in(`[2,4]`, "FP32", `[1,2,3,4,5,6,7]`), "7 elements, want 8"},
		{"flat too long", in(`[1,4]`, "FP32", `[1,2,3,4,5]`), "more than 4 elements"},
		{"nested row too short", in(`[2,4]`, "FP32", `[[1,2,3,4],[5,6,7]]`), "row 1 has 3 elements, want 4"},
		{"nested row too long", in(`[1,4]`, "FP32", `[[1,2,3,4,5]]`), "more than"},
		{"nested too few rows", in(`[2,4]`, "FP32", `[[1,2,3,4]]`), "1 rows, want 2"},
		{"nested too many rows", in(`[1,4]`, "FP32", `[[1,2,3,4],[5,6,7,8]]`), "more than 1 rows"},
		{"nested too deep", in(`[1,4]`, "FP32", `[[[1,2,3,4]]]`), "nested as [N][D]"},
		{"mixed nesting", in(`[2,4]`, "FP32", `[[1,2,3,4],5,6,7,8]`), "nested as [N][D]"},
		{"flat then nested", in(`[2,4]`, "FP32", `[1,2,3,4,[5,6,7,8]]`), "nested as [N][D]"},
		{"string element", in(`[1,4]`, "FP32", `[1,"2",3,4]`), "element 1 is not a number"},
		{"null element", in(`[1,4]`, "FP32", `[1,2,null,4]`), "element 2 is not a number"},
		{"fp32 overflow", in(`[1,4]`, "FP32", `[1,2,3,1e39]`), "not a finite number"},
		{"fp64 beyond fp32", in(`[1,4]`, "FP64", `[1,2,3,1e300]`), "out of the range of FP32"},
		{"fraction in an integer type", in(`[1,4]`, "INT32", `[1,2,3,4.5]`), "not an integer"},
		{"int8 out of range", in(`[1,4]`, "INT8", `[1,2,3,128]`), `"128" is not an integer`},
		{"negative unsigned", in(`[1,4]`, "UINT16", `[1,-2,3,4]`), `"-2" is not an integer`},
		{"unknown output", withOutputs(`[{"name":"logits"}]`), `unknown output "logits"`},
		{"output without a name", withOutputs(`[{}]`), `unknown output ""`},
		{"output twice", withOutputs(`[{"name":"label"},{"name":"label"}]`), "twice"},
		{"bad fault header", okIn, "x-sim-fault"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var hdr []string
			if c.name == "bad fault header" {
				hdr = []string{FaultHeader, "sometimes"}
			}
			body := c.body
			r := request(t, "POST", url+"/v2/models/clf/infer", body, hdr...)
			if r.StatusCode != 400 {
				t.Fatalf("%s: status %d, want 400: %s", body, r.StatusCode, readBody(t, r))
			}
			if msg := v2ErrorBody(t, r); !strings.Contains(msg, c.want) {
				t.Errorf("%s: error %q, want it to mention %q", body, msg, c.want)
			}
		})
	}
}

func TestInferAnswer(t *testing.T) {
	_, url := v2Server(t, nil)
	infer := func(t *testing.T, body string) *v2Response {
		t.Helper()
		return decodeInfer(t, post(t, url, "/v2/models/clf/infer", body))
	}
	rows := [][]float32{{0.5, -1, 2, 0.25}, {3, 1, -4, 1e-3}}
	clf := NewClassifier("clf", 4, 3)
	want := make([]answer, len(rows))
	for i, x := range rows {
		want[i].probs = make([]float32, 3)
		want[i].label = clf.Classify(want[i].probs, x)
	}
	check := func(t *testing.T, got []answer) {
		t.Helper()
		for i := range want {
			if fmt.Sprint(got[i]) != fmt.Sprint(want[i]) {
				t.Errorf("row %d: %v, want %v", i, got[i], want[i])
			}
		}
	}
	t.Run("flat with id", func(t *testing.T) {
		v := infer(t, inferBody(rows, "FP32", false, `,"id":"req-42","parameters":{"x":1}`))
		if v.ModelName != "clf" || v.ModelVersion != "1" || v.ID == nil || *v.ID != "req-42" {
			t.Errorf("head %+v", v)
		}
		check(t, v.rows(t, 2, 3))
	})
	t.Run("nested without id", func(t *testing.T) {
		v := infer(t, inferBody(rows, "FP32", true, ""))
		if v.ID != nil {
			t.Errorf("id %q in the answer to a request without one", *v.ID)
		}
		check(t, v.rows(t, 2, 3))
	})
	t.Run("version path", func(t *testing.T) {
		check(t, decodeInfer(t, post(t, url, "/v2/models/clf/versions/1/infer", inferBody(rows, "FP32", false, ""))).rows(t, 2, 3))
	})
	t.Run("FP64", func(t *testing.T) {
		check(t, infer(t, inferBody(rows, "FP64", true, "")).rows(t, 2, 3))
	})
	t.Run("integer types", func(t *testing.T) {
		ints := [][]float32{{1, -2, 3, 0}, {-128, 127, 5, 6}}
		base := infer(t, inferBody(ints, "FP32", false, "")).rows(t, 2, 3)
		for _, dt := range []string{"INT8", "INT16", "INT32", "INT64"} {
			if got := infer(t, inferBody(ints, dt, false, "")).rows(t, 2, 3); fmt.Sprint(got) != fmt.Sprint(base) {
				t.Errorf("%s: %v, want the FP32 answer %v", dt, got, base)
			}
		}
		uints := [][]float32{{1, 2, 3, 0}, {255, 7, 5, 6}}
		base = infer(t, inferBody(uints, "FP32", false, "")).rows(t, 2, 3)
		for _, dt := range []string{"UINT8", "UINT16", "UINT32", "UINT64"} {
			if got := infer(t, inferBody(uints, dt, true, "")).rows(t, 2, 3); fmt.Sprint(got) != fmt.Sprint(base) {
				t.Errorf("%s: %v, want the FP32 answer %v", dt, got, base)
			}
		}
	})
	t.Run("requested outputs", func(t *testing.T) {
		v := infer(t, inferBody(rows, "FP32", false, `,"outputs":[{"name":"label"}]`))
		if len(v.Outputs) != 1 || v.Outputs[0].Name != "label" || string(v.Outputs[0].Data) != fmt.Sprintf("[%d,%d]", want[0].label, want[1].label) {
			t.Errorf("outputs %+v, want only the labels", v.Outputs)
		}
		v = infer(t, inferBody(rows, "FP32", false, `,"outputs":[{"name":"label"},{"name":"probabilities","parameters":{"binary_data":false}}]`))
		if len(v.Outputs) != 2 || v.Outputs[0].Name != "label" || v.Outputs[1].Name != "probabilities" {
			t.Errorf("outputs %+v, want label then probabilities", v.Outputs)
		}
		v = infer(t, inferBody(rows, "FP32", false, `,"outputs":[]`))
		check(t, v.rows(t, 2, 3))
	})
	t.Run("probabilities", func(t *testing.T) {
		for i, a := range infer(t, inferBody(rows, "FP32", false, "")).rows(t, 2, 3) {
			sum, best := 0.0, 0
			for k, p := range a.probs {
				if !(p >= 0 && p <= 1) {
					t.Errorf("row %d: probability %v", i, p)
				}
				sum += float64(p)
				if p > a.probs[best] {
					best = k
				}
			}
			if math.Abs(sum-1) > 1e-6 || int64(best) != a.label {
				t.Errorf("row %d: %v sums to %v, label %d, want 1 and %d", i, a.probs, sum, a.label, best)
			}
		}
	})
}

// TestInferRowsAreIndependent: row i of a batch gets the answer it gets
// alone, so a batcher's callers can each check their own rows.
func TestInferRowsAreIndependent(t *testing.T) {
	_, url := v2Server(t, map[string]string{"classifier-features": "16", "classifier-classes": "5"})
	rng := rand.New(rand.NewPCG(7, 11))
	rows := make([][]float32, 37)
	for i := range rows {
		rows[i] = make([]float32, 16)
		for j := range rows[i] {
			rows[i][j] = float32(rng.NormFloat64() * 2)
		}
	}
	batch := decodeInfer(t, post(t, url, "/v2/models/clf/infer", inferBody(rows, "FP32", true, ""))).rows(t, len(rows), 5)
	clf := NewClassifier("clf", 16, 5)
	labels := map[int64]bool{}
	for i, x := range rows {
		alone := decodeInfer(t, post(t, url, "/v2/models/clf/infer", inferBody([][]float32{x}, "FP32", false, ""))).rows(t, 1, 5)[0]
		local := answer{probs: make([]float32, 5)}
		local.label = clf.Classify(local.probs, x)
		if fmt.Sprint(batch[i]) != fmt.Sprint(alone) || fmt.Sprint(alone) != fmt.Sprint(local) {
			t.Errorf("row %d: in the batch %v, alone %v, NewClassifier %v", i, batch[i], alone, local)
		}
		labels[alone.label] = true
	}
	if len(labels) < 3 {
		t.Errorf("37 random rows got only the labels %v: the classifier is degenerate", labels)
	}
	other := NewClassifier("other", 16, 5)
	p := make([]float32, 5)
	other.Classify(p, rows[0])
	if fmt.Sprint(p) == fmt.Sprint(batch[0].probs) {
		t.Error("another model name gives the same probabilities")
	}
}

// inferCtx runs one infer call through Handler without a connection.
func inferCtx(s *Server, body string, hdr ...string) *fasthttp.RequestCtx {
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod("POST")
	ctx.Request.SetRequestURI("/v2/models/c/infer")
	for i := 0; i+1 < len(hdr); i += 2 {
		ctx.Request.Header.Set(hdr[i], hdr[i+1])
	}
	ctx.Request.SetBodyString(body)
	s.Handler(&ctx)
	return &ctx
}

func rowsOf(n, d int) [][]float32 {
	rows := make([][]float32, n)
	for i := range rows {
		rows[i] = make([]float32, d)
		for j := range rows[i] {
			rows[i][j] = float32(i - j)
		}
	}
	return rows
}

func classifierTestServer(t *testing.T, kv map[string]string) *Server {
	t.Helper()
	m := map[string]string{"classifier-model": "c", "classifier-features": "2", "classifier-classes": "2",
		"classifier-call-overhead": "5ms", "classifier-per-item": "50us", "classifier-concurrency": "4"}
	for k, v := range kv {
		m[k] = v
	}
	return newTestServer(t, testOptions(t, m))
}

func TestClassifierBatchIsCheaper(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := classifierTestServer(t, nil)
		start := time.Now()
		if err := s.classifierCost(&sleeper{}, 64, 1); err != nil {
			t.Fatal(err)
		}
		batched := time.Since(start)
		start = time.Now()
		var wg sync.WaitGroup
		for range 64 {
			wg.Go(func() { s.classifierCost(&sleeper{}, 1, 1) })
		}
		wg.Wait()
		single := time.Since(start)
		if batched != 5*time.Millisecond+3200*time.Microsecond {
			t.Errorf("one call of 64 rows took %v, want 8.2ms", batched)
		}
		if single != 16*5050*time.Microsecond {
			t.Errorf("64 calls of 1 row took %v, want 16 rounds of 5.05ms = 80.8ms", single)
		}
	})
}

// TestInferHoldsTheSemaphore: an infer call of N rows holds a slot of the
// classifier's semaphore for exactly its modelled time, divided by the
// speed and multiplied by slow-factor for a slow fault.
func TestInferHoldsTheSemaphore(t *testing.T) {
	cases := []struct {
		name  string
		speed string
		rows  int
		fault string
		want  time.Duration
	}{
		{"1 row", "1", 1, "", 5050 * time.Microsecond},
		{"64 rows", "1", 64, "", 8200 * time.Microsecond},
		{"64 rows at speed 2", "2", 64, "", 4100 * time.Microsecond},
		{"slow fault", "1", 10, "slow", 10 * 5500 * time.Microsecond},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := classifierTestServer(t, map[string]string{"speed": c.speed})
				var hdr []string
				if c.fault != "" {
					hdr = []string{FaultHeader, c.fault}
				}
				body := inferBody(rowsOf(c.rows, 2), "FP32", false, "")
				done := make(chan int, 1)
				go func() { done <- inferCtx(s, body, hdr...).Response.StatusCode() }()
				time.Sleep(c.want - time.Nanosecond)
				synctest.Wait()
				if len(s.classifierSem) != 1 {
					t.Fatalf("%d slots held just before the modelled %v, want 1", len(s.classifierSem), c.want)
				}
				time.Sleep(time.Nanosecond)
				if st := <-done; st != 200 {
					t.Fatalf("status %d", st)
				}
				if len(s.classifierSem) != 0 {
					t.Errorf("the slot is still held after %v", c.want)
				}
			})
		})
	}
}

func TestInferConcurrency(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := classifierTestServer(t, map[string]string{"classifier-concurrency": "2"})
		body := inferBody(rowsOf(1, 2), "FP32", false, "")
		start := time.Now()
		var wg sync.WaitGroup
		for range 5 {
			wg.Go(func() { inferCtx(s, body) })
		}
		synctest.Wait()
		if len(s.classifierSem) != 2 || s.classifierWaiting.Load() != 3 {
			t.Errorf("%d running and %d waiting, want 2 and 3", len(s.classifierSem), s.classifierWaiting.Load())
		}
		m := metricsText(s)
		for _, want := range []string{`vllm:classifier_calls_running{model_name="c"} 2`, `vllm:classifier_calls_waiting{model_name="c"} 3`} {
			if !strings.Contains(m, want) {
				t.Errorf("metrics lack %s:\n%s", want, m)
			}
		}
		wg.Wait()
		if d := time.Since(start); d != 3*5050*time.Microsecond {
			t.Errorf("5 calls of 1 row, 2 at a time, took %v, want 3 rounds of 5.05ms", d)
		}
	})
}

func TestInferCloseEndsWaits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := classifierTestServer(t, map[string]string{"classifier-concurrency": "1", "classifier-call-overhead": "1h"})
		body := inferBody(rowsOf(1, 2), "FP32", false, "")
		status := make(chan *fasthttp.RequestCtx, 2)
		for range 2 {
			go func() { status <- inferCtx(s, body) }()
		}
		synctest.Wait()
		s.Close()
		for range 2 {
			ctx := <-status
			if ctx.Response.StatusCode() != 503 || !strings.HasPrefix(string(ctx.Response.Body()), `{"error":`) {
				t.Errorf("status %d %s, want 503 with a v2 error", ctx.Response.StatusCode(), ctx.Response.Body())
			}
		}
	})
}

func TestInferMetrics(t *testing.T) {
	s, url := v2Server(t, nil)
	for _, n := range []int{3, 5} {
		decodeInfer(t, post(t, url, "/v2/models/clf/infer", inferBody(rowsOf(n, 4), "FP32", false, "")))
	}
	post(t, url, "/v2/models/clf/infer", `{"inputs":[]}`)                                                // 400
	post(t, url, "/v2/models/clf/infer", inferBody(rowsOf(2, 4), "FP32", false, ""), FaultHeader, "500") // fault
	m := metricsText(s)
	for _, want := range []string{
		"# TYPE vllm:classifier_calls_total counter", `vllm:classifier_calls_total{model_name="clf"} 2`,
		"# TYPE vllm:classifier_items_total counter", `vllm:classifier_items_total{model_name="clf"} 8`,
		"# TYPE vllm:classifier_calls_running gauge", "# TYPE vllm:classifier_calls_waiting gauge",
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q:\n%s", want, m)
		}
	}
	_, url = startServer(t, nil)
	if r := get(t, url+"/metrics"); strings.Contains(string(readBody(t, r)), "classifier") {
		t.Error("a server without a classifier exports classifier metrics")
	}
}

func TestInferFaults(t *testing.T) {
	_, url := v2Server(t, map[string]string{"retry-after": "2s"})
	body := inferBody(rowsOf(2, 4), "FP32", false, "")
	t.Run("500", func(t *testing.T) {
		r := post(t, url, "/v2/models/clf/infer", body, FaultHeader, "500")
		if msg := v2ErrorBody(t, r); r.StatusCode != 500 || !strings.Contains(msg, "simulated") {
			t.Errorf("status %d %q", r.StatusCode, msg)
		}
	})
	t.Run("429", func(t *testing.T) {
		r := post(t, url, "/v2/models/clf/infer", body, FaultHeader, "429")
		if msg := v2ErrorBody(t, r); r.StatusCode != 429 || r.Header.Get("Retry-After") != "2" || msg == "" {
			t.Errorf("status %d retry-after %q", r.StatusCode, r.Header.Get("Retry-After"))
		}
	})
	t.Run("drop", func(t *testing.T) {
		r := post(t, url, "/v2/models/clf/infer", body, FaultHeader, "drop-mid-stream")
		if _, err := io.ReadAll(r.Body); err == nil {
			t.Error("reading a dropped answer succeeded")
		}
	})
	t.Run("none", func(t *testing.T) {
		decodeInfer(t, post(t, url, "/v2/models/clf/infer", body, FaultHeader, "none"))
	})
	t.Run("error-rate", func(t *testing.T) {
		_, url := v2Server(t, map[string]string{"error-rate": "1"})
		if r := post(t, url, "/v2/models/clf/infer", body); r.StatusCode != 500 {
			t.Errorf("status %d, want 500 with error-rate 1", r.StatusCode)
		}
		if r := request(t, "GET", url+"/v2/models/clf", ""); r.StatusCode != 200 {
			t.Errorf("metadata status %d: faults apply to infer only", r.StatusCode)
		}
	})
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal(what)
		}
		time.Sleep(time.Millisecond)
	}
}

func sendInfer(t *testing.T, url, body string, hdr string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "POST /v2/models/clf/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n%sContent-Length: %d\r\n\r\n%s", hdr, len(body), body)
	return conn
}

// TestInferHonoursDisconnect: a client that hangs up while its call waits
// for a slot, runs or stalls is noticed and its slot freed.
func TestInferHonoursDisconnect(t *testing.T) {
	s, url := v2Server(t, map[string]string{"classifier-call-overhead": "1h", "classifier-concurrency": "1",
		"disconnect-check": "5ms", "stall": "1h"})
	body := inferBody(rowsOf(1, 4), "FP32", false, "")
	running := sendInfer(t, url, body, "")
	waitFor(t, "the first call never ran", func() bool { return len(s.classifierSem) == 1 })
	waiting := sendInfer(t, url, body, "")
	waitFor(t, "the second call never waited", func() bool { return s.classifierWaiting.Load() == 1 })
	waiting.Close()
	waitFor(t, "the waiting call did not notice its client leaving", func() bool { return s.classifierWaiting.Load() == 0 })
	if len(s.classifierSem) != 1 {
		t.Fatalf("%d slots held, want the running call's", len(s.classifierSem))
	}
	running.Close()
	waitFor(t, "the running call did not notice its client leaving", func() bool { return len(s.classifierSem) == 0 })
	stalled := sendInfer(t, url, body, FaultHeader+": stall\r\n")
	waitFor(t, "the call never stalled", func() bool { return s.stalling.Load() == 1 })
	stalled.Close()
	waitFor(t, "the stalled call did not notice its client leaving", func() bool { return s.stalling.Load() == 0 })
}

func TestClassifierOptions(t *testing.T) {
	want := map[string][3]string{ // call overhead, per item, concurrency
		"small": {"3ms", "20µs", "4"},
		"large": {"8ms", "50µs", "2"},
		"fast":  {"0s", "0s", "100000"},
	}
	for p, w := range want {
		o, err := OptionsFromMap(map[string]string{"profile": p, "classifier-model": "c"})
		if err != nil {
			t.Fatal(err)
		}
		got := [3]string{o.ClassifierCallOverhead.String(), o.ClassifierPerItem.String(), strconv.Itoa(o.ClassifierConcurrency)}
		if got != w || o.ClassifierModel != "c" || o.ClassifierFeatures != 16 || o.ClassifierClasses != 4 || o.ClassifierMaxBatch != 1024 {
			t.Errorf("profile %s: %v features %d classes %d max-batch %d, want %v 16 4 1024", p, got, o.ClassifierFeatures, o.ClassifierClasses, o.ClassifierMaxBatch, w)
		}
	}
	if o := DefaultOptions(); o.ClassifierModel != "" {
		t.Errorf("default classifier-model %q, want none", o.ClassifierModel)
	}
	o, err := ParseArgs("sim", []string{"--classifier-per-item", "1ms", "--profile", "large", "--classifier-model", "k", "--classifier-max-batch", "8"})
	if err != nil || o.ClassifierPerItem != time.Millisecond || o.ClassifierCallOverhead != 8*time.Millisecond || o.ClassifierMaxBatch != 8 {
		t.Errorf("explicit flags over the profile: %+v, %v", o, err)
	}
	bad := []struct {
		m    map[string]string
		want string
	}{
		{map[string]string{"classifier-features": "0"}, "classifier-features=0"},
		{map[string]string{"classifier-features": "x"}, `"classifier-features"`},
		{map[string]string{"classifier-classes": "1"}, "classifier-classes=1: must be in 2..65536"},
		{map[string]string{"classifier-features": "4096", "classifier-classes": "4096"}, "classifier-features*classifier-classes"},
		{map[string]string{"classifier-concurrency": "0"}, "classifier-concurrency=0"},
		{map[string]string{"classifier-max-batch": "0"}, "classifier-max-batch=0"},
		{map[string]string{"classifier-call-overhead": "-1ms"}, "classifier-call-overhead"},
		{map[string]string{"classifier-per-item": "-1us"}, "classifier-per-item"},
		{map[string]string{"classifier-model": "a/b"}, "classifier-model"},
	}
	for _, c := range bad {
		if _, err := OptionsFromMap(c.m); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: err = %v, want it to mention %s", c.m, err, c.want)
		}
	}
}

func TestSplitV2ModelPath(t *testing.T) {
	cases := []struct {
		path, name, version, op string
		ok                      bool
	}{
		{"/v2/models/a", "a", "", "", true},
		{"/v2/models/a/ready", "a", "", "ready", true},
		{"/v2/models/a/infer", "a", "", "infer", true},
		{"/v2/models/a/versions/3", "a", "3", "", true},
		{"/v2/models/a/versions/3/infer", "a", "3", "infer", true},
		{"/v2/models/versions", "versions", "", "", true},
		{"/v2/models/a/versions", "", "", "", false},
		{"/v2/models/a/stats", "", "", "", false},
		{"/v2/models//infer", "", "", "", false},
		{"/v2/repository/index", "", "", "", false},
	}
	for _, c := range cases {
		n, v, op, ok := splitV2ModelPath(c.path)
		if n != c.name || v != c.version || op != c.op || ok != c.ok {
			t.Errorf("%s: %q %q %q %v, want %q %q %q %v", c.path, n, v, op, ok, c.name, c.version, c.op, c.ok)
		}
	}
}
