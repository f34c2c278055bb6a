package sim

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
)

// The Open Inference Protocol (KServe v2 REST, as Triton and KServe serve
// it) for one non-LLM model: a classifier that maps each row of an [N, D]
// FP32 tensor to C class probabilities and a label. It lets the gateway's
// dynamic batcher be measured: every infer call costs a fixed overhead plus a
// cost per row, so one call of N rows is far cheaper than N calls of one.

// The names and shapes of the classifier's tensors, and what the v2
// endpoints report about the server and the model.
const (
	v2Input         = "input"
	v2Probabilities = "probabilities"
	v2Label         = "label"
	v2Version       = "1"
	v2ServerName    = "switchyard-sim"
	v2ServerVersion = "1"
	// v2Platform is information only; the spec allows a fixed list of
	// names, and an ONNX model is the likeliest small classifier.
	v2Platform = "onnx_onnxv1"
)

// Classifier is the simulator's classifier: probabilities = softmax(W·x + b)
// and label = the index of the largest probability (the first on a tie).
// W (C×D) and b (C) are drawn from a generator seeded by the model name, so
// every server with the same classifier-model, classifier-features and
// classifier-classes answers the same, and each row's answer depends on that
// row alone, whatever else is in its batch. It is safe for concurrent use.
type Classifier struct {
	features, classes int
	w                 []float32 // classes rows of features weights
	b                 []float32
}

// NewClassifier returns the classifier that a simulator with these options
// serves (classifier-model, classifier-features, classifier-classes), so that
// a test can recompute any row's answer.
func NewClassifier(name string, features, classes int) *Classifier {
	c := &Classifier{features: features, classes: classes, w: make([]float32, features*classes), b: make([]float32, classes)}
	r := splitmix64(hashString(name))
	uniform := func() float32 { return float32(int64(r.next()>>11)-(1<<52)) / (1 << 52) } // [-1, 1)
	scale := float32(1 / math.Sqrt(float64(features)))                                    // logits of order 1 for inputs of order 1
	for i := range c.w {
		c.w[i] = uniform() * scale
	}
	for i := range c.b {
		c.b[i] = uniform() / 2
	}
	return c
}

// Features is the input width D.
func (c *Classifier) Features() int { return c.features }

// Classes is the number of classes C.
func (c *Classifier) Classes() int { return c.classes }

// Classify writes the class probabilities of the row x (len D) into probs
// (len C) and returns the label. It panics on other lengths.
func (c *Classifier) Classify(probs, x []float32) int64 {
	if len(x) != c.features || len(probs) != c.classes {
		panic(fmt.Sprintf("sim: Classify of a row of %d into %d classes; the classifier takes %d into %d", len(x), len(probs), c.features, c.classes))
	}
	// The product of two float32s is exact in float64, so the sums are the
	// same whether or not the compiler fuses them into multiply-adds.
	top := math.Inf(-1)
	logits := probs // reused: logit k is read before probability k is written
	for k := range logits {
		acc := float64(c.b[k])
		for j, w := range c.w[k*c.features : (k+1)*c.features] {
			acc += float64(w) * float64(x[j])
		}
		logits[k] = float32(acc)
		top = max(top, float64(logits[k]))
	}
	sum := 0.0
	for k, l := range logits {
		e := math.Exp(float64(l) - top)
		sum += e
		probs[k] = float32(e)
	}
	label, best := 0, float32(-1)
	for k, e := range probs {
		probs[k] = float32(float64(e) / sum)
		if probs[k] > best {
			label, best = k, probs[k]
		}
	}
	return int64(label)
}

// v2Error is an Open Inference Protocol error answer: {"error": message}.
type v2Error struct {
	status  int
	message string
}

func (e *v2Error) Error() string { return e.message }

func v2BadRequest(format string, args ...any) *v2Error {
	return &v2Error{status: 400, message: fmt.Sprintf(format, args...)}
}

func (s *Server) writeV2Error(ctx *fasthttp.RequestCtx, e *v2Error) {
	if e.status == 429 || e.status == 503 {
		secs := int64((s.o.RetryAfter + time.Second - 1) / time.Second)
		ctx.Response.Header.Set("Retry-After", strconv.FormatInt(secs, 10))
	}
	ctx.SetStatusCode(e.status)
	ctx.SetContentType("application/json")
	b := append(make([]byte, 0, len(e.message)+16), `{"error":`...)
	b = appendJSONString(b, e.message)
	ctx.SetBody(append(b, '}'))
}

func writeV2JSON(ctx *fasthttp.RequestCtx, body []byte) {
	ctx.SetContentType("application/json")
	ctx.SetBody(body)
}

// serveV2 serves the paths under /v2:
//
//	GET  /v2                                             server metadata
//	GET  /v2/health/live, /v2/health/ready               liveness, readiness
//	GET  /v2/models/{name}[/versions/{v}]                model metadata
//	GET  /v2/models/{name}[/versions/{v}]/ready          model readiness
//	POST /v2/models/{name}[/versions/{v}]/infer          inference
func (s *Server) serveV2(ctx *fasthttp.RequestCtx, path string) {
	get := ctx.IsGet() || ctx.IsHead()
	switch path {
	case "/v2", "/v2/":
		if get {
			writeV2JSON(ctx, []byte(`{"name":"`+v2ServerName+`","version":"`+v2ServerVersion+`","extensions":[]}`))
			return
		}
		s.v2MethodNotAllowed(ctx, path, "GET, HEAD")
		return
	case "/v2/health/live":
		if get {
			writeV2JSON(ctx, []byte(`{"live":true}`))
			return
		}
		s.v2MethodNotAllowed(ctx, path, "GET, HEAD")
		return
	case "/v2/health/ready":
		// The spec's text names the field "live" and KServe's servers send
		// "ready": both are here.
		if get {
			writeV2JSON(ctx, []byte(`{"live":true,"ready":true}`))
			return
		}
		s.v2MethodNotAllowed(ctx, path, "GET, HEAD")
		return
	}
	name, version, op, ok := splitV2ModelPath(path)
	if !ok {
		s.writeV2Error(ctx, &v2Error{status: 404, message: "no such endpoint: " + string(ctx.Method()) + " " + path})
		return
	}
	switch {
	case op == "infer" && !ctx.IsPost():
		s.v2MethodNotAllowed(ctx, path, "POST")
		return
	case op != "infer" && !get:
		s.v2MethodNotAllowed(ctx, path, "GET, HEAD")
		return
	}
	if e := s.checkV2Model(name, version); e != nil {
		s.writeV2Error(ctx, e)
		return
	}
	switch op {
	case "":
		s.v2ModelMetadata(ctx)
	case "ready":
		b := append([]byte(`{"name":`), appendJSONString(nil, name)...)
		writeV2JSON(ctx, append(b, `,"ready":true}`...))
	default:
		s.infer(ctx)
	}
}

// splitV2ModelPath splits /v2/models/{name}[/versions/{v}][/ready|/infer].
func splitV2ModelPath(path string) (name, version, op string, ok bool) {
	rest, ok := strings.CutPrefix(path, "/v2/models/")
	if !ok {
		return "", "", "", false
	}
	segs := strings.Split(rest, "/")
	name = segs[0]
	segs = segs[1:]
	if len(segs) >= 2 && segs[0] == "versions" {
		version = segs[1]
		if version == "" {
			return "", "", "", false
		}
		segs = segs[2:]
	}
	switch {
	case len(segs) == 1 && (segs[0] == "ready" || segs[0] == "infer"):
		op = segs[0]
	case len(segs) != 0:
		return "", "", "", false
	}
	if name == "" {
		return "", "", "", false
	}
	return name, version, op, true
}

func (s *Server) v2MethodNotAllowed(ctx *fasthttp.RequestCtx, path, allow string) {
	ctx.Response.Header.Set("Allow", allow)
	s.writeV2Error(ctx, &v2Error{status: 405, message: "method " + string(ctx.Method()) + " is not allowed on " + path})
}

func (s *Server) checkV2Model(name, version string) *v2Error {
	switch {
	case s.clf == nil:
		return &v2Error{status: 404, message: fmt.Sprintf("unknown model %q: this server serves no classifier (see the classifier-model option)", name)}
	case name != s.o.ClassifierModel:
		return &v2Error{status: 404, message: fmt.Sprintf("unknown model %q: this server serves %q", name, s.o.ClassifierModel)}
	case version != "" && version != v2Version:
		return &v2Error{status: 404, message: fmt.Sprintf("unknown version %q of model %q: its only version is %q", version, name, v2Version)}
	}
	return nil
}

func (s *Server) v2ModelMetadata(ctx *fasthttp.RequestCtx) {
	b := append(make([]byte, 0, 320), `{"name":`...)
	b = appendJSONString(b, s.o.ClassifierModel)
	b = append(b, `,"versions":["`+v2Version+`"],"platform":"`+v2Platform+`","inputs":[{"name":"`+v2Input+`","datatype":"FP32","shape":[-1,`...)
	b = strconv.AppendInt(b, int64(s.o.ClassifierFeatures), 10)
	b = append(b, `]}],"outputs":[{"name":"`+v2Probabilities+`","datatype":"FP32","shape":[-1,`...)
	b = strconv.AppendInt(b, int64(s.o.ClassifierClasses), 10)
	b = append(b, `]},{"name":"`+v2Label+`","datatype":"INT64","shape":[-1]}]}`...)
	writeV2JSON(ctx, b)
}

// inferRequest is the $inference_request object. Parameters are accepted
// and ignored, as are unknown fields.
type inferRequest struct {
	ID      *string             `json:"id"`
	Inputs  []inferRequestInput `json:"inputs"`
	Outputs []struct {
		Name string `json:"name"`
	} `json:"outputs"`
}

type inferRequestInput struct {
	Name     string          `json:"name"`
	Shape    []int64         `json:"shape"`
	Datatype string          `json:"datatype"`
	Data     json.RawMessage `json:"data"`
}

// inferCall is a parsed infer request.
type inferCall struct {
	id    *string
	n     int
	x     []float32 // n rows of D features
	order []string  // the outputs to answer, in order
}

// allOutputs is the answer of a request that names no outputs.
var allOutputs = []string{v2Probabilities, v2Label}

// parseInfer parses and checks an infer request for the classifier.
func (s *Server) parseInfer(body []byte) (*inferCall, *v2Error) {
	var r inferRequest
	if e := decodeJSON(body, &r); e != nil {
		return nil, &v2Error{status: e.status, message: e.message}
	}
	d := s.o.ClassifierFeatures
	var in *inferRequestInput
	for i := range r.Inputs {
		switch {
		case r.Inputs[i].Name != v2Input:
			return nil, v2BadRequest("unknown input %q: the model's only input is %q", r.Inputs[i].Name, v2Input)
		case in != nil:
			return nil, v2BadRequest("input %q is given twice", v2Input)
		}
		in = &r.Inputs[i]
	}
	if in == nil {
		return nil, v2BadRequest("inputs: want the tensor %q, FP32 of shape [N, %d]", v2Input, d)
	}
	shape := in.Shape
	if len(shape) != 2 {
		return nil, v2BadRequest("input %q: shape %s: want [N, %d]", v2Input, shapeString(shape), d)
	}
	switch n := shape[0]; {
	case shape[1] != int64(d):
		return nil, v2BadRequest("input %q: shape %s: want [N, %d]", v2Input, shapeString(shape), d)
	case n < 1:
		return nil, v2BadRequest("input %q: shape %s: the batch size N must be at least 1", v2Input, shapeString(shape))
	case n > int64(s.o.ClassifierMaxBatch):
		return nil, v2BadRequest("input %q: shape %s: the batch size %d is larger than the model's maximum of %d", v2Input, shapeString(shape), n, s.o.ClassifierMaxBatch)
	}
	dt, ok := v2Datatypes[in.Datatype]
	switch {
	case !ok:
		return nil, v2BadRequest("input %q: unknown datatype %q", v2Input, in.Datatype)
	case dt == dtUnsupported:
		return nil, v2BadRequest("input %q: datatype %s is not supported: want FP32 (or FP64 or an integer type)", v2Input, in.Datatype)
	}
	if len(in.Data) == 0 {
		return nil, v2BadRequest("input %q: data is required", v2Input)
	}
	c := &inferCall{id: r.ID, n: int(shape[0]), order: allOutputs}
	x, err := parseTensorData(in.Data, c.n, d, dt)
	if err != nil {
		return nil, v2BadRequest("input %q (shape %s, %s): %v", v2Input, shapeString(shape), in.Datatype, err)
	}
	c.x = x
	if len(r.Outputs) > 0 {
		c.order = make([]string, 0, 2)
		for _, o := range r.Outputs {
			if o.Name != v2Probabilities && o.Name != v2Label {
				return nil, v2BadRequest("unknown output %q: the model's outputs are %q and %q", o.Name, v2Probabilities, v2Label)
			}
			for _, p := range c.order {
				if p == o.Name {
					return nil, v2BadRequest("output %q is requested twice", o.Name)
				}
			}
			c.order = append(c.order, o.Name)
		}
	}
	return c, nil
}

// shapeString formats a shape as JSON does.
func shapeString(shape []int64) string {
	b := []byte{'['}
	for i, n := range shape {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, n, 10)
	}
	return string(append(b, ']'))
}

// datatype is how the elements of an input tensor are read.
type datatype uint8

const (
	dtUnsupported datatype = iota // a tensor type of the spec that the model does not take
	dtFP32
	dtFP64
	dtInt8
	dtInt16
	dtInt32
	dtInt64
	dtUint8
	dtUint16
	dtUint32
	dtUint64
)

// v2Datatypes are the spec's tensor data types.
var v2Datatypes = map[string]datatype{
	"FP32": dtFP32, "FP64": dtFP64,
	"INT8": dtInt8, "INT16": dtInt16, "INT32": dtInt32, "INT64": dtInt64,
	"UINT8": dtUint8, "UINT16": dtUint16, "UINT32": dtUint32, "UINT64": dtUint64,
	"BOOL": dtUnsupported, "FP16": dtUnsupported, "BF16": dtUnsupported, "BYTES": dtUnsupported,
}

// parseTensorData reads data, the JSON array of an [n, d] tensor flat
// ([x, x, ...]) or nested ([[x, ...], ...]) in row-major order, as float32s.
// Integer types must hold integers in their range; every value must be
// finite in FP32, the model's own type. It reads what it is given only once
// and allocates no more than the data can fill.
func parseTensorData(data []byte, n, d int, dt datatype) ([]float32, error) {
	p := dataParser{b: data, dt: dt}
	want := n * d
	x := make([]float32, 0, min(want, len(data)/2+1))
	p.space()
	if !p.eat('[') {
		return nil, errors.New("data must be an array")
	}
	p.space()
	var err error
	if p.peek() == '[' {
		for row := 0; ; row++ {
			if row == n {
				return nil, fmt.Errorf("data has more than %d rows", n)
			}
			p.space()
			if !p.eat('[') {
				return nil, errors.New("data must be flat or nested as [N][D] arrays of numbers")
			}
			before := len(x)
			if x, err = p.numbers(x, before+d); err != nil {
				return nil, fmt.Errorf("data row %d: %w", row, err)
			}
			if got := len(x) - before; got != d {
				return nil, fmt.Errorf("data row %d has %d elements, want %d", row, got, d)
			}
			p.space()
			if p.eat(']') {
				if row+1 != n {
					return nil, fmt.Errorf("data has %d rows, want %d", row+1, n)
				}
				break
			}
			if !p.eat(',') {
				return nil, errors.New("data is not a JSON array")
			}
		}
	} else if x, err = p.numbers(x, want); err != nil {
		return nil, err
	} else if len(x) != want {
		return nil, fmt.Errorf("data has %d elements, want %d", len(x), want)
	}
	p.space()
	if p.i != len(p.b) {
		return nil, errors.New("data is not a JSON array")
	}
	return x, nil
}

// dataParser reads the numbers of a tensor's JSON data.
type dataParser struct {
	b  []byte
	i  int
	dt datatype
}

func (p *dataParser) space() {
	for p.i < len(p.b) && (p.b[p.i] == ' ' || p.b[p.i] == '\n' || p.b[p.i] == '\t' || p.b[p.i] == '\r') {
		p.i++
	}
}

func (p *dataParser) peek() byte {
	if p.i < len(p.b) {
		return p.b[p.i]
	}
	return 0
}

func (p *dataParser) eat(c byte) bool {
	if p.peek() == c {
		p.i++
		return true
	}
	return false
}

// numbers reads comma-separated numbers up to and including the closing
// bracket of the array whose opening bracket was just read, appending them
// to x; more than limit elements in all is an error.
func (p *dataParser) numbers(x []float32, limit int) ([]float32, error) {
	p.space()
	if p.eat(']') {
		return x, nil
	}
	for {
		p.space()
		start := p.i
		for p.i < len(p.b) && isNumberByte(p.b[p.i]) {
			p.i++
		}
		if p.i == start {
			switch p.peek() {
			case '[':
				return x, errors.New("data must be flat or nested as [N][D] arrays of numbers")
			case 0:
				return x, errors.New("data is not a JSON array")
			}
			return x, fmt.Errorf("element %d is not a number", len(x))
		}
		if len(x) == limit {
			return x, fmt.Errorf("data has more than %d elements", limit)
		}
		v, err := p.value(p.b[start:p.i])
		if err != nil {
			return x, fmt.Errorf("element %d: %w", len(x), err)
		}
		x = append(x, v)
		p.space()
		if p.eat(']') {
			return x, nil
		}
		if !p.eat(',') {
			return x, errors.New("data is not a JSON array")
		}
	}
}

// value converts one number of the tensor's datatype to float32.
func (p *dataParser) value(tok []byte) (float32, error) {
	// string(tok) does not allocate: strconv copies what its errors keep.
	var f float64
	switch p.dt {
	case dtFP32, dtFP64:
		bits := 64
		if p.dt == dtFP32 {
			bits = 32
		}
		v, err := strconv.ParseFloat(string(tok), bits)
		if err != nil && !errors.Is(err, strconv.ErrRange) || math.IsInf(v, 0) || math.IsNaN(v) {
			return 0, fmt.Errorf("%q is not a finite number of the datatype", tok)
		}
		f = v
	case dtUint8, dtUint16, dtUint32, dtUint64:
		v, err := strconv.ParseUint(string(tok), 10, p.dt.bits())
		if err != nil {
			return 0, fmt.Errorf("%q is not an integer of the datatype", tok)
		}
		f = float64(v)
	default:
		v, err := strconv.ParseInt(string(tok), 10, p.dt.bits())
		if err != nil {
			return 0, fmt.Errorf("%q is not an integer of the datatype", tok)
		}
		f = float64(v)
	}
	if v := float32(f); !math.IsInf(float64(v), 0) {
		return v, nil
	}
	return 0, fmt.Errorf("%s is out of the range of FP32", tok)
}

// bits is the size of an integer datatype.
func (dt datatype) bits() int {
	switch dt {
	case dtInt8, dtUint8:
		return 8
	case dtInt16, dtUint16:
		return 16
	case dtInt32, dtUint32:
		return 32
	}
	return 64
}

// isNumberByte reports whether c can be part of a JSON number.
func isNumberByte(c byte) bool {
	return c >= '0' && c <= '9' || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E'
}

// infer runs an infer call: parse, faults, the cost, then the answer.
func (s *Server) infer(ctx *fasthttp.RequestCtx) {
	body := ctx.PostBody()
	if len(body) > s.o.MaxBodySize { // fasthttp enforces it too; this covers other servers calling Handler
		s.writeV2Error(ctx, &v2Error{status: 413, message: fmt.Sprintf("the request body has %d bytes, more than the maximum of %d", len(body), s.o.MaxBodySize)})
		return
	}
	c, e := s.parseInfer(body)
	if e != nil {
		s.writeV2Error(ctx, e)
		return
	}
	f, fe := s.pickFault(ctx)
	if fe != nil {
		s.writeV2Error(ctx, v2BadRequest("%s", fe.message))
		return
	}
	switch f {
	case fault500:
		s.writeV2Error(ctx, &v2Error{status: 500, message: "simulated internal server error"})
		return
	case fault429:
		s.writeV2Error(ctx, &v2Error{status: 429, message: "simulated rate limit: retry after the time in retry-after"})
		return
	}
	sl := &sleeper{conn: ctx.Conn(), check: s.o.DisconnectCheck}
	defer sl.stop()
	if f == faultStall {
		s.stalling.Add(1)
		err := sl.sleep(s.ctx, s.o.Stall)
		s.stalling.Add(-1)
		if err != nil {
			s.abandonV2(ctx, err)
			return
		}
	}
	factor := 1.0
	if f == faultSlow {
		factor = s.o.SlowFactor
	}
	if err := s.classifierCost(sl, c.n, factor); err != nil {
		s.abandonV2(ctx, err)
		return
	}
	s.m.classifierCalls.Inc()
	s.m.classifierItems.Add(c.n)
	body = s.appendInferResponse(nil, c)
	if f == faultDrop {
		dropResponse(ctx, body)
		return
	}
	writeV2JSON(ctx, body)
}

// classifierCost models an infer call: at most classifier-concurrency calls
// execute at once, each costing classifier-call-overhead + n *
// classifier-per-item, divided by the speed.
func (s *Server) classifierCost(sl *sleeper, n int, factor float64) error {
	d := s.o.ClassifierCallOverhead + time.Duration(n)*s.o.ClassifierPerItem
	return s.callCost(s.classifierSem, &s.classifierWaiting, sl, s.eng.scale(time.Duration(float64(d)*factor)))
}

// abandonV2 ends an infer call that could not run.
func (s *Server) abandonV2(ctx *fasthttp.RequestCtx, err error) {
	if errors.Is(err, errClientGone) {
		ctx.SetConnectionClose()
		ctx.SetStatusCode(499)
		return
	}
	s.writeV2Error(ctx, &v2Error{status: 503, message: s.admissionError(err).message})
}

// appendInferResponse classifies every row of c and appends the
// $inference_response.
func (s *Server) appendInferResponse(b []byte, c *inferCall) []byte {
	nc := s.clf.classes
	probs := make([]float32, c.n*nc)
	labels := make([]int64, c.n)
	d := s.clf.features
	for i := range c.n {
		labels[i] = s.clf.Classify(probs[i*nc:(i+1)*nc], c.x[i*d:(i+1)*d])
	}
	if b == nil {
		b = make([]byte, 0, 128+len(probs)*12+c.n*4)
	}
	b = append(b, `{"model_name":`...)
	b = appendJSONString(b, s.o.ClassifierModel)
	b = append(b, `,"model_version":"`+v2Version+`"`...)
	if c.id != nil {
		b = append(b, `,"id":`...)
		b = appendJSONString(b, *c.id)
	}
	b = append(b, `,"outputs":[`...)
	for i, name := range c.order {
		if i > 0 {
			b = append(b, ',')
		}
		switch name {
		case v2Probabilities:
			b = append(b, `{"name":"`+v2Probabilities+`","datatype":"FP32","shape":[`...)
			b = strconv.AppendInt(b, int64(c.n), 10)
			b = append(b, ',')
			b = strconv.AppendInt(b, int64(nc), 10)
			b = append(b, `],"data":[`...)
			for j, p := range probs {
				if j > 0 {
					b = append(b, ',')
				}
				b = strconv.AppendFloat(b, float64(p), 'g', -1, 32)
			}
		case v2Label:
			b = append(b, `{"name":"`+v2Label+`","datatype":"INT64","shape":[`...)
			b = strconv.AppendInt(b, int64(c.n), 10)
			b = append(b, `],"data":[`...)
			for j, l := range labels {
				if j > 0 {
					b = append(b, ',')
				}
				b = strconv.AppendInt(b, l, 10)
			}
		}
		b = append(b, "]}"...)
	}
	return append(b, "]}"...)
}
