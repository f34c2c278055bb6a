package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/url"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"switchyard/backends/sim"
)

// The batching comparison's load: closed-loop clients, each sending its
// next request as soon as its previous one is answered, every answer
// checked against the request. The load generator (loadtest) does not check
// answers and knows only the OpenAI API, hence this small client of its
// own.

// closedLoad is one point of the batching comparison.
type closedLoad struct {
	url      string // the gateway's base URL
	workload string
	clients  int
	setup    BatchingSetup
	// seed makes the requests reproducible: client i draws from seed and i.
	seed             uint64
	warmup, duration time.Duration
	// timeout bounds each request. Default 10s.
	timeout time.Duration
	// metrics is the gateway's /metrics URL, read at the start and the end
	// of the window for the items per batch of pool; empty: not read.
	metrics, pool string
	// gatewayPID is the gateway's process, whose CPU time (and this
	// process's) is read at the start and the end of the window, in
	// clock ticks of hz per second; 0: not read.
	gatewayPID int
	hz         float64
}

// errWrongAnswer is the error kind of an answer with status 200 that is
// not the request's own (or does not parse); any fails the run.
const errWrongAnswer = "wrong_answer"

// exchange makes one client's requests and checks their answers. One per
// client: it is not safe for concurrent use.
type exchange interface {
	// next appends the body of the client's next request to dst.
	next(dst []byte) []byte
	// check returns an error unless body answers the last request.
	check(body []byte) error
}

func newExchange(l *closedLoad, client int, clf *sim.Classifier) exchange {
	rng := rand.New(rand.NewPCG(l.seed, uint64(client)))
	if l.workload == BatchClassifier {
		return &classifierExchange{
			clf: clf, rng: rng,
			x: make([]float32, clf.Features()), want: make([]float32, clf.Classes()),
		}
	}
	return &embedExchange{model: batchEmbedModel, dim: l.setup.EmbedDim, words: l.setup.EmbedWords, client: client, rng: rng}
}

// clientTally is what one client saw within the measured window (and its
// wrong answers at any time).
type clientTally struct {
	lat        []float64 // ms, successes only
	requests   int64
	errs       map[string]int64
	wrong      int64
	firstWrong error
}

// runClosedLoad runs l's clients for the warm-up and the measured window
// and returns the window's figures. Requests count in the window they
// complete in. A wrong answer, or a window without one success, is an
// error.
func runClosedLoad(ctx context.Context, l closedLoad) (BatchingSample, error) {
	u, err := url.Parse(l.url)
	if err != nil || u.Host == "" || u.Scheme != "http" {
		return BatchingSample{}, fmt.Errorf("bad gateway URL %q", l.url)
	}
	if l.clients < 1 || l.duration <= 0 {
		return BatchingSample{}, fmt.Errorf("%d clients for %v: want at least one for a positive time", l.clients, l.duration)
	}
	timeout := l.timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	hc := &fasthttp.HostClient{
		Addr:                u.Host,
		Name:                "switchyard-bench",
		MaxConns:            l.clients,
		MaxConnWaitTimeout:  timeout,
		MaxIdleConnDuration: 5 * time.Second,
		MaxResponseBodySize: 16 << 20,
		// A replayed POST would count one request twice.
		RetryIfErr: func(*fasthttp.Request, int, error) (bool, bool) { return false, false },
	}
	defer hc.CloseIdleConnections()
	uri := "http://" + u.Host + batchPath(l.workload)
	var clf *sim.Classifier
	if l.workload == BatchClassifier {
		clf = sim.NewClassifier(batchClassifierModel, l.setup.ClassifierFeatures, l.setup.ClassifierClasses)
	}

	winStart := time.Now().Add(l.warmup)
	winEnd := winStart.Add(l.duration)
	tallies := make([]clientTally, l.clients)
	var wg sync.WaitGroup
	// The gateway's figures at the window's start and end.
	var at [2]windowReading
	var atOK [2]bool
	if l.metrics != "" || l.gatewayPID > 0 {
		wg.Go(func() {
			for i, when := range []time.Time{winStart, winEnd} {
				t := time.NewTimer(time.Until(when))
				select {
				case <-ctx.Done():
					t.Stop()
					return
				case <-t.C:
				}
				at[i], atOK[i] = l.read(), true
			}
		})
	}
	for i := range l.clients {
		wg.Go(func() {
			runClient(ctx, hc, uri, newExchange(&l, i, clf), timeout, winStart, winEnd, &tallies[i])
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return BatchingSample{}, err
	}

	var smp BatchingSample
	var lat []float64
	var wrong int64
	var firstWrong error
	for i := range tallies {
		t := &tallies[i]
		lat = append(lat, t.lat...)
		smp.Requests += t.requests
		for k, n := range t.errs {
			if smp.ErrorKinds == nil {
				smp.ErrorKinds = map[string]int64{}
			}
			smp.ErrorKinds[k] += n
			smp.Errors += n
		}
		wrong += t.wrong
		if firstWrong == nil {
			firstWrong = t.firstWrong
		}
	}
	if wrong > 0 {
		return smp, fmt.Errorf("%d answers were not their request's own; the first: %w", wrong, firstWrong)
	}
	if len(lat) == 0 {
		return smp, fmt.Errorf("no request succeeded in the measured window (%d sent%s); does the gateway serve POST %s?",
			smp.Requests, kindsSuffix(smp.ErrorKinds), batchPath(l.workload))
	}
	if atOK[0] && atOK[1] {
		a, b := at[0], at[1]
		if n := b.batches - a.batches; a.itemsOK && b.itemsOK && n > 0 {
			smp.BatchItems = (b.items - a.items) / n
		}
		if a.cpuOK && b.cpuOK && l.hz > 0 {
			busy := func(ticks uint64) float64 { return float64(ticks) / l.hz / l.duration.Seconds() }
			smp.GatewayBusy, smp.LoadBusy = busy(b.gateway-a.gateway), busy(b.load-a.load)
		}
	}
	slices.Sort(lat)
	smp.Throughput = float64(len(lat)) / l.duration.Seconds()
	smp.P50, smp.P99 = quantile(lat, 0.5), quantile(lat, 0.99)
	return smp, nil
}

// runClient is one closed-loop client: it sends until winEnd and tallies
// what completes within [winStart, winEnd].
func runClient(ctx context.Context, hc *fasthttp.HostClient, uri string, ex exchange, timeout time.Duration, winStart, winEnd time.Time, t *clientTally) {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(uri)
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.SetContentType("application/json")
	var body []byte
	for ctx.Err() == nil {
		body = ex.next(body[:0])
		req.SetBodyRaw(body)
		t0 := time.Now()
		if !t0.Before(winEnd) {
			return
		}
		err := hc.DoTimeout(req, resp, timeout)
		t1 := time.Now()
		kind := ""
		switch {
		case err != nil:
			kind = transportKind(err)
		case resp.StatusCode() != fasthttp.StatusOK:
			kind = "http_" + strconv.Itoa(resp.StatusCode())
		default:
			if cerr := ex.check(resp.Body()); cerr != nil {
				kind = errWrongAnswer
				t.wrong++
				if t.firstWrong == nil {
					t.firstWrong = cerr
				}
			}
		}
		if t1.Before(winStart) || t1.After(winEnd) {
			continue
		}
		t.requests++
		if kind != "" {
			if t.errs == nil {
				t.errs = map[string]int64{}
			}
			t.errs[kind]++
			continue
		}
		t.lat = append(t.lat, float64(t1.Sub(t0))/1e6)
	}
}

// windowReading is the gateway's batches and CPU time, and this process's
// CPU time, at one end of the measured window.
type windowReading struct {
	items, batches float64 // switchyard_batch_items sum and count
	itemsOK        bool
	gateway, load  uint64 // clock ticks of utime+stime
	cpuOK          bool
}

// read takes l's window reading: what of it can be read.
func (l *closedLoad) read() windowReading {
	var r windowReading
	if l.gatewayPID > 0 {
		g, err1 := cpuOf([]int{l.gatewayPID})
		me, err2 := cpuOf([]int{os.Getpid()})
		r.gateway, r.load, r.cpuOK = g, me, err1 == nil && err2 == nil
	}
	if l.metrics != "" {
		var err error
		r.items, r.batches, err = scrapeBatchItems(l.metrics, l.pool)
		r.itemsOK = err == nil
	}
	return r
}

// scrapeBatchItems reads the sum and count of pool's
// switchyard_batch_items histogram from the gateway's /metrics at url.
func scrapeBatchItems(url, pool string) (sum, count float64, err error) {
	status, body, err := fasthttp.GetTimeout(nil, url, 5*time.Second)
	if err != nil {
		return 0, 0, err
	}
	if status != fasthttp.StatusOK {
		return 0, 0, fmt.Errorf("GET %s: status %d", url, status)
	}
	label := []byte(`model="` + pool + `"`)
	var found int
	for line := range bytes.SplitSeq(body, []byte("\n")) {
		var dst *float64
		switch {
		case bytes.HasPrefix(line, []byte("switchyard_batch_items_sum{")):
			dst = &sum
		case bytes.HasPrefix(line, []byte("switchyard_batch_items_count{")):
			dst = &count
		default:
			continue
		}
		i := bytes.LastIndexByte(line, ' ')
		if i < 0 || !bytes.Contains(line[:i], label) {
			continue
		}
		v, err := strconv.ParseFloat(string(line[i+1:]), 64)
		if err != nil {
			return 0, 0, fmt.Errorf("GET %s: %q: %w", url, line, err)
		}
		*dst = v
		found++
	}
	if found != 2 {
		return 0, 0, fmt.Errorf("GET %s: no switchyard_batch_items sum and count for %s", url, pool)
	}
	return sum, count, nil
}

func transportKind(err error) string {
	if errors.Is(err, fasthttp.ErrTimeout) || errors.Is(err, os.ErrDeadlineExceeded) {
		return "timeout"
	}
	return "network"
}

// quantile is the nearest-rank q-quantile of sorted xs.
func quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// embedWords is the vocabulary of the embeddings inputs.
var embedWords = []string{
	"alpha", "batch", "cache", "delta", "embed", "frame", "graph", "index", "label", "model",
	"queue", "route", "score", "token", "vector", "weight",
}

// embedExchange sends one input per request, unique to the client and the
// request, and checks that the answer holds one embedding of the right
// size at index 0.
type embedExchange struct {
	model         string
	dim, words    int
	client, count int
	rng           *rand.Rand
}

func (x *embedExchange) next(dst []byte) []byte {
	x.count++
	dst = append(dst, `{"model":"`...)
	dst = append(dst, x.model...)
	dst = append(dst, `","input":"client `...)
	dst = strconv.AppendInt(dst, int64(x.client), 10)
	dst = append(dst, " request "...)
	dst = strconv.AppendInt(dst, int64(x.count), 10)
	for range x.words {
		dst = append(dst, ' ')
		dst = append(dst, embedWords[x.rng.IntN(len(embedWords))]...)
	}
	return append(dst, `"}`...)
}

func (x *embedExchange) check(body []byte) error {
	var r struct {
		Data []struct {
			Index     int       `json:"index"`
			Embedding []float32 `json:"embedding"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return fmt.Errorf("embeddings answer does not parse: %v: %.200s", err, body)
	}
	if len(r.Data) != 1 {
		return fmt.Errorf("embeddings answer has %d embeddings for one input: %.200s", len(r.Data), body)
	}
	if d := r.Data[0]; d.Index != 0 || len(d.Embedding) != x.dim {
		return fmt.Errorf("embeddings answer has index %d and %d numbers, want index 0 and %d", d.Index, len(d.Embedding), x.dim)
	}
	return nil
}

// classifierExchange sends one random row per request and checks that the
// answer is that row's: the probabilities and label the simulator's
// classifier gives it, recomputed here.
type classifierExchange struct {
	clf       *sim.Classifier
	rng       *rand.Rand
	x, want   []float32
	wantLabel int64
}

func (x *classifierExchange) next(dst []byte) []byte {
	for i := range x.x {
		x.x[i] = x.rng.Float32()*2 - 1
	}
	x.wantLabel = x.clf.Classify(x.want, x.x)
	dst = append(dst, `{"inputs":[{"name":"input","datatype":"FP32","shape":[1,`...)
	dst = strconv.AppendInt(dst, int64(len(x.x)), 10)
	dst = append(dst, `],"data":[`...)
	for i, v := range x.x {
		if i > 0 {
			dst = append(dst, ',')
		}
		// The shortest text that reads back as the same float32, so the
		// server classifies exactly this row.
		dst = strconv.AppendFloat(dst, float64(v), 'g', -1, 32)
	}
	return append(dst, `]}]}`...)
}

// probTolerance allows an intermediary to print the probabilities with
// fewer digits; another row's differ far more.
const probTolerance = 1e-6

func (x *classifierExchange) check(body []byte) error {
	var r struct {
		Outputs []struct {
			Name  string    `json:"name"`
			Shape []int     `json:"shape"`
			Data  []float64 `json:"data"`
		} `json:"outputs"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return fmt.Errorf("inference answer does not parse: %v: %.200s", err, body)
	}
	var probsOK, labelOK bool
	for _, o := range r.Outputs {
		switch o.Name {
		case "probabilities":
			if !slices.Equal(o.Shape, []int{1, len(x.want)}) || len(o.Data) != len(x.want) {
				return fmt.Errorf("probabilities of shape %v with %d numbers, want [1, %d]", o.Shape, len(o.Data), len(x.want))
			}
			for k, p := range o.Data {
				if math.Abs(p-float64(x.want[k])) > probTolerance {
					return fmt.Errorf("row %v: probabilities %v, want %v", x.x, o.Data, x.want)
				}
			}
			probsOK = true
		case "label":
			if !slices.Equal(o.Shape, []int{1}) || len(o.Data) != 1 {
				return fmt.Errorf("label of shape %v with %d numbers, want [1]", o.Shape, len(o.Data))
			}
			if int64(o.Data[0]) != x.wantLabel || o.Data[0] != math.Trunc(o.Data[0]) {
				return fmt.Errorf("row %v: label %v, want %d", x.x, o.Data[0], x.wantLabel)
			}
			labelOK = true
		}
	}
	if !probsOK || !labelOK {
		return fmt.Errorf("inference answer lacks probabilities or label: %.200s", body)
	}
	return nil
}
