// Package sim is Switchyard's GPU model server simulator: a stand-in for a vLLM
// server that speaks the OpenAI API, models continuous batching, time to first
// token, inter-token latency, a paged KV cache with prefix caching, an
// embeddings cost model and vLLM's Prometheus metrics, and injects faults on
// request. With a classifier model it also plays a Triton/KServe server: the
// Open Inference Protocol (KServe v2 REST) with a per-call cost model. It runs as its own process (switchyard sim) and inside the gateway
// (backend kind sim). docs/simulator.md describes the model and every flag.
package sim

import (
	"flag"
	"fmt"
	"math"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Options configure one simulator process. Every field has a flag of the same
// meaning (named in its comment); DefaultOptions gives the "small" profile.
type Options struct {
	// Listen holds the addresses to serve on (flag listen, repeatable and
	// comma-separated). Each address is a separate simulated server; see Speed.
	Listen []string
	// Model is the name of the generative model served (flag model).
	Model string
	// EmbedModel is the name of the embeddings model (flag embed-model). When
	// empty, /v1/embeddings answers for Model.
	EmbedModel string
	// Profile names the preset the defaults came from (flag profile): small,
	// large or fast. Explicitly set flags override the preset in any order.
	Profile string
	// Speed scales every simulated duration by 1/speed (flag speed). It holds
	// one value for all servers or one per Listen address, so one process can
	// simulate a heterogeneous pool.
	Speed []float64

	// MaxNumSeqs is the number of sequences that run at once (flag max-num-seqs).
	MaxNumSeqs int
	// MaxWaiting bounds the FIFO queue of waiting requests; beyond it requests
	// are refused with 503 (flag max-waiting).
	MaxWaiting int
	// MaxModelLen is the largest prompt plus output length in tokens (flag max-model-len).
	MaxModelLen int
	// KVBlocks is the number of KV cache blocks (flag kv-blocks).
	KVBlocks int
	// BlockSize is the number of tokens per KV cache block (flag block-size).
	BlockSize int
	// PrefixCaching enables the prefix cache (flag prefix-caching).
	PrefixCaching bool

	// PrefillOverhead is a fixed prefill cost per request (flag prefill-overhead).
	PrefillOverhead time.Duration
	// PrefillPerToken is the prefill cost per prompt token not found in the
	// prefix cache (flag prefill-per-token).
	PrefillPerToken time.Duration
	// ITL is the inter-token latency of a lone sequence (flag itl).
	ITL time.Duration
	// ITLPerSeq is added to ITL for every running sequence (flag itl-per-seq):
	// itl = ITL + ITLPerSeq * running.
	ITLPerSeq time.Duration
	// OutputLen is the distribution of a completion's natural length in tokens
	// (flag output-len): "max" (always run to the token limit), "N" (fixed),
	// "uniform:A-B", "normal:MEAN,STDDEV" or "exp:MEAN". Drawn deterministically
	// from the prompt.
	OutputLen string
	// DefaultMaxTokens is the length limit of a request without max_tokens
	// (flag default-max-tokens); reaching it counts as a natural stop.
	DefaultMaxTokens int

	// EmbedDim is the embedding vector dimension (flag embed-dim).
	EmbedDim int
	// EmbedCallOverhead is the fixed cost of one embeddings call (flag embed-call-overhead).
	EmbedCallOverhead time.Duration
	// EmbedPerItem is the cost of each input of an embeddings call (flag embed-per-item).
	EmbedPerItem time.Duration
	// EmbedConcurrency bounds the embeddings calls executing at once (flag embed-concurrency).
	EmbedConcurrency int
	// EmbedMaxInputs bounds the inputs of one embeddings call (flag embed-max-inputs).
	EmbedMaxInputs int

	// ClassifierModel is the name of the classifier served by the Open
	// Inference Protocol endpoints under /v2 (flag classifier-model). When
	// empty, the v2 health and server metadata endpoints answer and every
	// model is unknown.
	ClassifierModel string
	// ClassifierFeatures is the classifier's input width D: its input tensor
	// "input" has shape [N, D] (flag classifier-features).
	ClassifierFeatures int
	// ClassifierClasses is the number of classes C: the output
	// "probabilities" has shape [N, C] (flag classifier-classes).
	ClassifierClasses int
	// ClassifierCallOverhead is the fixed cost of one infer call (flag
	// classifier-call-overhead).
	ClassifierCallOverhead time.Duration
	// ClassifierPerItem is the cost of each row of an infer call (flag
	// classifier-per-item).
	ClassifierPerItem time.Duration
	// ClassifierConcurrency bounds the infer calls executing at once (flag
	// classifier-concurrency); the others wait their turn.
	ClassifierConcurrency int
	// ClassifierMaxBatch is the largest first dimension N of an infer call's
	// input (flag classifier-max-batch); more is a 400.
	ClassifierMaxBatch int

	// ErrorRate is the fraction of requests answered with 500 (flag error-rate).
	ErrorRate float64
	// RateLimitRate is the fraction of requests answered with 429 (flag rate-limit-rate).
	RateLimitRate float64
	// StallRate is the fraction of requests that stall before the first token (flag stall-rate).
	StallRate float64
	// DropRate is the fraction of requests whose connection is dropped mid-stream (flag drop-rate).
	DropRate float64
	// SlowRate is the fraction of requests with slow tokens (flag slow-rate).
	SlowRate float64
	// Stall is how long a stalled request waits before its first token (flag stall).
	Stall time.Duration
	// SlowFactor multiplies the inter-token latency of slow requests (flag slow-factor).
	SlowFactor float64
	// RetryAfter is the retry-after value of 429 and 503 answers (flag retry-after).
	RetryAfter time.Duration
	// Seed seeds the fault draws (flag seed).
	Seed int64

	// MaxBodySize bounds request bodies in bytes (flag max-body-size).
	MaxBodySize int
	// ResponsesStore is how many finished Responses API responses are kept for
	// GET /v1/responses/{id} (flag responses-store); the oldest go first, and 0
	// keeps none.
	ResponsesStore int
	// DisconnectCheck is how often a waiting request checks whether its client
	// has gone (flag disconnect-check); 0 disables the check.
	DisconnectCheck time.Duration
}

// Profiles are the presets of the profile flag. "small" is the default.
var profiles = map[string]map[string]string{
	// A 7-8B model on one 80 GB GPU.
	"small": {
		"prefix-caching": "true", "max-num-seqs": "128", "max-waiting": "1024", "max-model-len": "8192",
		"kv-blocks": "8192", "block-size": "16",
		"prefill-overhead": "0", "prefill-per-token": "50us",
		"itl": "10ms", "itl-per-seq": "200us",
		"embed-call-overhead": "2ms", "embed-per-item": "200us", "embed-concurrency": "8",
		"classifier-call-overhead": "3ms", "classifier-per-item": "20us", "classifier-concurrency": "4",
	},
	// A 70B model with tensor parallelism over several GPUs.
	"large": {
		"prefix-caching": "true", "max-num-seqs": "256", "max-waiting": "2048", "max-model-len": "32768",
		"kv-blocks": "16384", "block-size": "16",
		"prefill-overhead": "0", "prefill-per-token": "200us",
		"itl": "30ms", "itl-per-seq": "300us",
		"embed-call-overhead": "5ms", "embed-per-item": "500us", "embed-concurrency": "4",
		"classifier-call-overhead": "8ms", "classifier-per-item": "50us", "classifier-concurrency": "2",
	},
	// No simulated time at all: for benchmarking the gateway as a proxy.
	// The prefix cache is off (it would only cost hashing here).
	"fast": {
		"max-num-seqs": "100000", "max-waiting": "100000", "max-model-len": "131072",
		"kv-blocks": "1000000", "block-size": "16", "prefix-caching": "false",
		"prefill-overhead": "0", "prefill-per-token": "0",
		"itl": "0", "itl-per-seq": "0",
		"embed-call-overhead": "0", "embed-per-item": "0", "embed-concurrency": "100000",
		"classifier-call-overhead": "0", "classifier-per-item": "0", "classifier-concurrency": "100000",
	},
}

// ProfileNames lists the presets of the profile flag.
func ProfileNames() []string {
	names := make([]string, 0, len(profiles))
	for n := range profiles {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// DefaultOptions returns the defaults: the "small" profile on 127.0.0.1:8000
// serving model "sim-model".
func DefaultOptions() Options {
	o := Options{
		Listen:           []string{"127.0.0.1:8000"},
		Model:            "sim-model",
		Profile:          "small",
		Speed:            []float64{1},
		PrefixCaching:    true,
		OutputLen:        "max",
		DefaultMaxTokens: 256,
		EmbedDim:         384,
		EmbedMaxInputs:   2048,

		ClassifierFeatures: 16,
		ClassifierClasses:  4,
		ClassifierMaxBatch: 1024,

		Stall:           10 * time.Minute,
		SlowFactor:      10,
		RetryAfter:      time.Second,
		Seed:            1,
		MaxBodySize:     16 << 20,
		ResponsesStore:  10000,
		DisconnectCheck: 200 * time.Millisecond,
	}
	fs := o.bind("defaults", nil)
	for k, v := range profiles["small"] {
		if err := fs.Set(k, v); err != nil {
			panic("sim: bad small profile: " + err.Error())
		}
	}
	return o
}

// FlagSet returns a flag set bound to o with every simulator flag. Flags set
// explicitly win over the profile flag regardless of their order.
func (o *Options) FlagSet(name string) *flag.FlagSet {
	explicit := map[string]bool{}
	return o.bind(name, explicit)
}

// bind defines the flags on a new FlagSet. When explicit is not nil, it
// records every flag set, and the profile flag applies its preset only to the
// flags not set explicitly (before or after it).
func (o *Options) bind(name string, explicit map[string]bool) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	listenSet := false
	fs.Func("listen", "`HOST:PORT` to serve on; repeat or comma-separate for several simulated servers (default 127.0.0.1:8000)", func(s string) error {
		if !listenSet {
			o.Listen = nil
			listenSet = true
		}
		for _, a := range strings.Split(s, ",") {
			a = strings.TrimSpace(a)
			if a == "" {
				continue
			}
			if _, _, err := net.SplitHostPort(a); err != nil {
				return fmt.Errorf("bad address %q: %v", a, err)
			}
			o.Listen = append(o.Listen, a)
		}
		return nil
	})
	fs.StringVar(&o.Model, "model", o.Model, "`NAME` of the generative model served")
	fs.StringVar(&o.EmbedModel, "embed-model", o.EmbedModel, "`NAME` of the embeddings model (default: embeddings answer for --model)")
	fs.Func("speed", "speed `FACTOR`s, comma-separated: one for all servers or one per --listen address; durations are divided by it (default 1)", func(s string) error {
		var sp []float64
		for _, p := range strings.Split(s, ",") {
			f, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
			if err != nil || !(f > 0) || math.IsInf(f, 0) {
				return fmt.Errorf("bad speed %q: want a number > 0", p)
			}
			sp = append(sp, f)
		}
		o.Speed = sp
		return nil
	})
	fs.IntVar(&o.MaxNumSeqs, "max-num-seqs", o.MaxNumSeqs, "`N` sequences running at once (continuous batching)")
	fs.IntVar(&o.MaxWaiting, "max-waiting", o.MaxWaiting, "`N` requests at most in the waiting queue; beyond it requests get 503")
	fs.IntVar(&o.MaxModelLen, "max-model-len", o.MaxModelLen, "largest prompt plus output `tokens`")
	fs.IntVar(&o.KVBlocks, "kv-blocks", o.KVBlocks, "`N` KV cache blocks")
	fs.IntVar(&o.BlockSize, "block-size", o.BlockSize, "`N` tokens per KV cache block")
	fs.BoolVar(&o.PrefixCaching, "prefix-caching", o.PrefixCaching, "enable the prefix cache")
	fs.DurationVar(&o.PrefillOverhead, "prefill-overhead", o.PrefillOverhead, "fixed prefill `DURATION` per request")
	fs.DurationVar(&o.PrefillPerToken, "prefill-per-token", o.PrefillPerToken, "prefill `DURATION` per prompt token not in the prefix cache")
	fs.DurationVar(&o.ITL, "itl", o.ITL, "inter-token latency (`DURATION`) of a lone sequence")
	fs.DurationVar(&o.ITLPerSeq, "itl-per-seq", o.ITLPerSeq, "inter-token latency `DURATION` added per running sequence")
	fs.StringVar(&o.OutputLen, "output-len", o.OutputLen, "natural output length `DIST`: max, N, uniform:A-B, normal:MEAN,SD, exp:MEAN")
	fs.IntVar(&o.DefaultMaxTokens, "default-max-tokens", o.DefaultMaxTokens, "output limit in `tokens` of requests without max_tokens")
	fs.IntVar(&o.EmbedDim, "embed-dim", o.EmbedDim, "embedding dimension `N`")
	fs.DurationVar(&o.EmbedCallOverhead, "embed-call-overhead", o.EmbedCallOverhead, "fixed `DURATION` of one embeddings call")
	fs.DurationVar(&o.EmbedPerItem, "embed-per-item", o.EmbedPerItem, "`DURATION` of each embeddings input")
	fs.IntVar(&o.EmbedConcurrency, "embed-concurrency", o.EmbedConcurrency, "`N` embeddings calls executing at once")
	fs.IntVar(&o.EmbedMaxInputs, "embed-max-inputs", o.EmbedMaxInputs, "`N` inputs at most in one embeddings call")
	fs.StringVar(&o.ClassifierModel, "classifier-model", o.ClassifierModel, "`NAME` of the classifier served by the KServe v2 endpoints (default: none)")
	fs.IntVar(&o.ClassifierFeatures, "classifier-features", o.ClassifierFeatures, "classifier input width `D`: input shape [N, D]")
	fs.IntVar(&o.ClassifierClasses, "classifier-classes", o.ClassifierClasses, "classifier classes `C`: probabilities shape [N, C]")
	fs.DurationVar(&o.ClassifierCallOverhead, "classifier-call-overhead", o.ClassifierCallOverhead, "fixed `DURATION` of one classifier infer call")
	fs.DurationVar(&o.ClassifierPerItem, "classifier-per-item", o.ClassifierPerItem, "`DURATION` of each row of a classifier infer call")
	fs.IntVar(&o.ClassifierConcurrency, "classifier-concurrency", o.ClassifierConcurrency, "`N` classifier infer calls executing at once")
	fs.IntVar(&o.ClassifierMaxBatch, "classifier-max-batch", o.ClassifierMaxBatch, "`N` rows at most in one classifier infer call")
	fs.Float64Var(&o.ErrorRate, "error-rate", o.ErrorRate, "`FRACTION` of requests answered with 500")
	fs.Float64Var(&o.RateLimitRate, "rate-limit-rate", o.RateLimitRate, "`FRACTION` of requests answered with 429")
	fs.Float64Var(&o.StallRate, "stall-rate", o.StallRate, "`FRACTION` of requests stalling before the first token")
	fs.Float64Var(&o.DropRate, "drop-rate", o.DropRate, "`FRACTION` of requests dropped mid-stream")
	fs.Float64Var(&o.SlowRate, "slow-rate", o.SlowRate, "`FRACTION` of requests with slow tokens")
	fs.DurationVar(&o.Stall, "stall", o.Stall, "`DURATION` of a stall before the first token")
	fs.Float64Var(&o.SlowFactor, "slow-factor", o.SlowFactor, "inter-token latency multiplier (`FACTOR`) of slow requests")
	fs.DurationVar(&o.RetryAfter, "retry-after", o.RetryAfter, "retry-after `DURATION` of 429 and 503 answers (rounded up to seconds)")
	fs.Int64Var(&o.Seed, "seed", o.Seed, "`SEED` of the fault draws")
	fs.IntVar(&o.MaxBodySize, "max-body-size", o.MaxBodySize, "largest request body in `bytes`")
	fs.IntVar(&o.ResponsesStore, "responses-store", o.ResponsesStore, "`N` stored Responses API responses at most, oldest evicted first (0: none)")
	fs.DurationVar(&o.DisconnectCheck, "disconnect-check", o.DisconnectCheck, "`DURATION` between checks that a waiting client is still connected (0: never)")
	fs.Func("profile", "preset `NAME`: small, large or fast; explicit flags override it (default small)", func(s string) error {
		p, ok := profiles[s]
		if !ok {
			return fmt.Errorf("unknown profile %q (want one of %s)", s, strings.Join(ProfileNames(), ", "))
		}
		o.Profile = s
		for k, v := range p {
			if explicit[k] {
				continue
			}
			fv := fs.Lookup(k).Value
			if t, ok := fv.(*tracked); ok {
				fv = t.Value // a preset is not an explicit setting
			}
			if err := fv.Set(v); err != nil {
				return fmt.Errorf("profile %s: %s: %v", s, k, err)
			}
		}
		return nil
	})
	if explicit != nil {
		fs.VisitAll(func(f *flag.Flag) {
			if f.Name != "profile" {
				f.Value = &tracked{Value: f.Value, name: f.Name, explicit: explicit}
			}
		})
	}
	return fs
}

// tracked marks a flag as explicitly set so that a later profile leaves it alone.
type tracked struct {
	flag.Value
	name     string
	explicit map[string]bool
}

func (t *tracked) Set(s string) error {
	if err := t.Value.Set(s); err != nil {
		return err
	}
	t.explicit[t.name] = true
	return nil
}

// String is safe on the zero value, which the flag package makes for help text.
func (t *tracked) String() string {
	if t == nil || t.Value == nil {
		return ""
	}
	return t.Value.String()
}

// IsBoolFlag lets "-prefix-caching" stand alone on the command line.
func (t *tracked) IsBoolFlag() bool {
	b, ok := t.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// ParseArgs parses command-line arguments into options and validates them.
func ParseArgs(name string, args []string) (Options, error) {
	o := DefaultOptions()
	fs := o.FlagSet(name)
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return o, o.Validate()
}

// OptionsFromMap builds options from flag-name -> value pairs, as written
// under sim: in the gateway's YAML. Unknown names and bad values are errors
// naming the key. The result is validated.
func OptionsFromMap(m map[string]string) (Options, error) {
	o := DefaultOptions()
	fs := o.FlagSet("sim")
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if fs.Lookup(k) == nil {
			return o, fmt.Errorf("sim option %q: unknown option", k)
		}
		if err := fs.Set(k, m[k]); err != nil {
			return o, fmt.Errorf("sim option %q: bad value %q: %v", k, m[k], err)
		}
	}
	return o, o.Validate()
}

// Validate checks the options and names the flag of the first bad value.
func (o *Options) Validate() error {
	bad := func(flagName string, v any, want string) error {
		return fmt.Errorf("sim option %s=%v: %s", flagName, v, want)
	}
	switch {
	case len(o.Listen) == 0:
		return bad("listen", "", "at least one address is required")
	case o.Model == "":
		return bad("model", `""`, "a model name is required")
	case len(o.Speed) != 1 && len(o.Speed) != len(o.Listen):
		return bad("speed", o.Speed, fmt.Sprintf("want 1 value or one per --listen address (%d)", len(o.Listen)))
	case o.MaxNumSeqs < 1:
		return bad("max-num-seqs", o.MaxNumSeqs, "must be >= 1")
	case o.MaxWaiting < 0:
		return bad("max-waiting", o.MaxWaiting, "must be >= 0")
	case o.BlockSize < 1:
		return bad("block-size", o.BlockSize, "must be >= 1")
	case o.KVBlocks < 1:
		return bad("kv-blocks", o.KVBlocks, "must be >= 1")
	case o.MaxModelLen < 2:
		return bad("max-model-len", o.MaxModelLen, "must be >= 2")
	case o.DefaultMaxTokens < 1:
		return bad("default-max-tokens", o.DefaultMaxTokens, "must be >= 1")
	case o.EmbedDim < 1 || o.EmbedDim > 65536:
		return bad("embed-dim", o.EmbedDim, "must be in 1..65536")
	case o.EmbedConcurrency < 1:
		return bad("embed-concurrency", o.EmbedConcurrency, "must be >= 1")
	case o.EmbedMaxInputs < 1:
		return bad("embed-max-inputs", o.EmbedMaxInputs, "must be >= 1")
	case o.ClassifierFeatures < 1 || o.ClassifierFeatures > maxClassifierDim:
		return bad("classifier-features", o.ClassifierFeatures, fmt.Sprintf("must be in 1..%d", maxClassifierDim))
	case o.ClassifierClasses < 2 || o.ClassifierClasses > maxClassifierDim:
		return bad("classifier-classes", o.ClassifierClasses, fmt.Sprintf("must be in 2..%d", maxClassifierDim))
	case o.ClassifierFeatures*o.ClassifierClasses > maxClassifierWeights:
		return bad("classifier-features*classifier-classes", o.ClassifierFeatures*o.ClassifierClasses,
			fmt.Sprintf("must be at most %d (the weights are held in memory)", maxClassifierWeights))
	case o.ClassifierConcurrency < 1:
		return bad("classifier-concurrency", o.ClassifierConcurrency, "must be >= 1")
	case o.ClassifierMaxBatch < 1 || o.ClassifierMaxBatch > maxClassifierBatch:
		return bad("classifier-max-batch", o.ClassifierMaxBatch, fmt.Sprintf("must be in 1..%d", maxClassifierBatch))
	case o.ClassifierCallOverhead < 0 || o.ClassifierPerItem < 0:
		return bad("classifier-call-overhead/classifier-per-item", "", "durations must be >= 0")
	case strings.ContainsAny(o.ClassifierModel, "/?#% \t\n"):
		return bad("classifier-model", strconv.Quote(o.ClassifierModel), "must not contain '/', '?', '#', '%' or white space (it is a URL path segment)")
	case o.SlowFactor < 1:
		return bad("slow-factor", o.SlowFactor, "must be >= 1")
	case o.MaxBodySize < 1:
		return bad("max-body-size", o.MaxBodySize, "must be >= 1")
	case o.ResponsesStore < 0:
		return bad("responses-store", o.ResponsesStore, "must be >= 0")
	case o.Stall < 0 || o.RetryAfter < 0 || o.DisconnectCheck < 0:
		return bad("stall/retry-after/disconnect-check", "", "durations must be >= 0")
	case o.PrefillOverhead < 0 || o.PrefillPerToken < 0 || o.ITL < 0 || o.ITLPerSeq < 0 ||
		o.EmbedCallOverhead < 0 || o.EmbedPerItem < 0:
		return bad("prefill-*/itl*/embed-*", "", "durations must be >= 0")
	}
	for _, s := range o.Speed {
		if !(s > 0) || math.IsInf(s, 0) {
			return bad("speed", o.Speed, "every value must be > 0")
		}
	}
	rates := []struct {
		name string
		v    float64
	}{{"error-rate", o.ErrorRate}, {"rate-limit-rate", o.RateLimitRate}, {"stall-rate", o.StallRate}, {"drop-rate", o.DropRate}, {"slow-rate", o.SlowRate}}
	sum := 0.0
	for _, r := range rates {
		if !(r.v >= 0 && r.v <= 1) {
			return bad(r.name, r.v, "must be in 0..1")
		}
		sum += r.v
	}
	if sum > 1 {
		return bad("error-rate+rate-limit-rate+stall-rate+drop-rate+slow-rate", sum, "fault rates must add up to at most 1")
	}
	if _, err := parseOutputLen(o.OutputLen); err != nil {
		return bad("output-len", o.OutputLen, err.Error())
	}
	if o.EmbedModel == o.Model {
		o.EmbedModel = ""
	}
	return nil
}

// Bounds of the classifier options.
const (
	maxClassifierDim     = 65536
	maxClassifierWeights = 1 << 22
	maxClassifierBatch   = 1 << 20
)

// PerServer splits o into one Options per Listen address, each with its own
// Speed, for serving a heterogeneous pool from one process.
func (o Options) PerServer() []Options {
	out := make([]Options, len(o.Listen))
	for i, addr := range o.Listen {
		c := o
		c.Listen = []string{addr}
		sp := o.Speed[0]
		if len(o.Speed) == len(o.Listen) {
			sp = o.Speed[i]
		}
		c.Speed = []float64{sp}
		out[i] = c
	}
	return out
}

// speed returns the speed of a single-server Options.
func (o *Options) speed() float64 {
	if len(o.Speed) == 0 {
		return 1
	}
	return o.Speed[0]
}
