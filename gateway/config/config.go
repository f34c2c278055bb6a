// Package config is Switchyard's configuration: the YAML schema as Go structs,
// ${ENV} expansion, strict decoding, defaults and validation.
//
// Load (or Parse) runs the whole pipeline:
//
//  1. read the file;
//  2. parse it with yaml.v3 into a node tree;
//  3. expand ${VAR} and ${VAR:-default} in every scalar (per scalar, so that
//     line numbers stay those of the file; $$ is a literal $);
//  4. decode strictly: unknown keys, duplicate keys and wrong types are errors
//     (top-level keys starting with "x-" are ignored: a place for anchors);
//  5. SetDefaults;
//  6. Validate: references, duplicates, URLs, enums, globs, numbers.
//
// Every problem found along the way is collected and returned at once as
// *Errors, each with file, line, column and YAML path, so that
// "switchyard validate" prints them all.
//
// The field doc comments below are the config reference; docs/config.md
// repeats them as a table with a complete example. A key given in the file
// keeps its value even when that value is zero; a key left out gets its
// default.
package config

import (
	"bytes"
	"fmt"
	"os"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is a whole Switchyard config file.
type Config struct {
	// Listen is the gateway's address, host:port. Default "127.0.0.1:8080".
	Listen string `yaml:"listen"`
	// Admin is the admin API (config dump, reload, health).
	Admin Admin `yaml:"admin"`
	// Server holds the HTTP server's limits and timeouts.
	Server Server `yaml:"server"`
	// Log sets logging.
	Log Log `yaml:"log"`
	// Backends are the upstream servers (OpenAI-compatible, or the built-in
	// simulator).
	Backends []Backend `yaml:"backends"`
	// Models are the model pools: public model names mapped to backend
	// targets, with balancing, fallbacks and retries.
	Models []Model `yaml:"models"`
	// Routes are tried in order; the first whose match fits the request
	// runs its chain and sends the request to its pool. When empty, one
	// route "default" matches everything and passes the requested model
	// through to the pool of that name.
	Routes []Route `yaml:"routes"`
	// Keys are the API keys accepted by the gateway, stored as SHA-256
	// hashes. Empty means the gateway is open: no authentication.
	Keys []Key `yaml:"keys,omitempty"`
	// Tenants are the teams or applications keys belong to; their models,
	// limits and budgets apply to all their keys together.
	Tenants []Tenant `yaml:"tenants,omitempty"`
	// RateLimit sets where rate-limit state lives (in process, or Redis
	// shared by replicas).
	RateLimit RateLimit `yaml:"ratelimit,omitempty"`
	// Admission sets priority load shedding when a pool is at capacity.
	Admission Admission `yaml:"admission,omitempty"`
	// DataDir holds the gateway's files: the SQLite store
	// (switchyard.db). Default "./data"; a relative path is taken from the
	// config file's directory. Created (mode 0700) if missing; used only
	// when the config needs the store (admin API, budgets, PostgreSQL not
	// set).
	DataDir string `yaml:"data_dir,omitempty"`
	// Store is the durable store (keys made through the admin API, spend).
	Store Store `yaml:"store,omitempty"`
	// Collections are the document collections of retrieval, each also an
	// OpenAI vector store (docs/retrieval.md).
	Collections []Collection `yaml:"collections,omitempty"`
	// Tools is the tool registry: the MCP servers whose tools the agent
	// stage offers models (docs/agent.md).
	Tools Tools `yaml:"tools,omitempty"`

	// File is the path the config was read from ("" when parsed from
	// bytes without a name).
	File string `yaml:"-"`
	// Raw is the file's bytes as read, before ${ENV} expansion, so that a
	// reload can skip an unchanged file.
	Raw []byte `yaml:"-"`

	// pos maps YAML paths given in the file to their positions; nil for a
	// Config built in Go.
	pos map[string]pos
}

// Admin is the admin API.
type Admin struct {
	// Listen is the admin API's address, host:port; empty (the default)
	// disables the admin API.
	Listen string `yaml:"listen"`
	// Token is the bearer token that admin requests must present. Required
	// when listen is set, unless insecure is true.
	Token Secret `yaml:"token,omitempty"`
	// Insecure allows an admin API without a token. Default false.
	Insecure bool `yaml:"insecure"`
}

// Server holds the HTTP server's limits and timeouts.
type Server struct {
	// MaxBodySize is the largest request body accepted. Default "4MiB";
	// must be positive.
	MaxBodySize Size `yaml:"max_body_size"`
	// ReadTimeout bounds reading a whole request. Default "60s"; 0 means none.
	ReadTimeout Duration `yaml:"read_timeout"`
	// WriteTimeout bounds writing a whole response. Default 0, none, since
	// streamed completions are long.
	WriteTimeout Duration `yaml:"write_timeout"`
	// IdleTimeout closes keep-alive connections idle this long. Default "90s".
	IdleTimeout Duration `yaml:"idle_timeout"`
	// DrainTimeout is how long shutdown and reload wait for requests in
	// flight. Default "30s".
	DrainTimeout Duration `yaml:"drain_timeout"`
	// MaxConns caps concurrent client connections. Default 0, the server's
	// built-in limit.
	MaxConns int `yaml:"max_conns"`
	// Compression sets response compression.
	Compression Compression `yaml:"compression"`
	// WatchInterval is how often the config file is polled for changes.
	// Default "2s"; 0 disables polling (SIGHUP and the admin API still reload).
	WatchInterval Duration `yaml:"watch_interval"`
	// MaxHeaderSize is the largest request head (request line and headers)
	// accepted; a bigger one is answered 431. Default "8KiB"; must be at
	// least 1KiB. Each client connection holds a read buffer of this size.
	MaxHeaderSize Size `yaml:"max_header_size"`
	// PublicMetrics serves GET /metrics on the client listener. Default:
	// true without keys, false when keys are configured (then metrics are
	// served on the admin listener only, behind its token).
	PublicMetrics *bool `yaml:"public_metrics"`
}

// Compression sets compression of non-streamed responses (gzip or zstd, as
// the client accepts).
type Compression struct {
	// Enabled turns compression on. Default true.
	Enabled *bool `yaml:"enabled"`
	// MinSize is the smallest body that is compressed. Default "1KiB".
	MinSize Size `yaml:"min_size"`
}

// Log sets logging.
type Log struct {
	// Level is the least severe level logged: debug, info, warn or error.
	// Default info.
	Level string `yaml:"level"`
	// Requests logs one line per request. Default false.
	Requests bool `yaml:"requests"`
}

// Backend kinds.
const (
	KindOpenAI = "openai" // an OpenAI-compatible HTTP server (vLLM, OpenAI, ...)
	KindSim    = "sim"    // the built-in GPU-server simulator, in process
	KindKServe = "kserve" // a KServe v2 / Triton server (Open Inference Protocol)
)

// Backend is one upstream server.
type Backend struct {
	// Name identifies the backend in model targets, logs and metrics.
	// Required and unique.
	Name string `yaml:"name"`
	// Kind is openai (default), an OpenAI-compatible server at url, or sim,
	// the built-in simulator run in process.
	Kind string `yaml:"kind"`
	// URL is the server's base URL, http or https, with an optional path
	// prefix (e.g. "http://10.0.0.5:8000/v1"). Required for kind openai;
	// not allowed for kind sim.
	URL string `yaml:"url,omitempty"`
	// APIKey is sent upstream as a bearer token. Optional.
	APIKey Secret `yaml:"api_key,omitempty"`
	// MaxConcurrency caps requests in flight to this backend. Default 0,
	// unlimited.
	MaxConcurrency int `yaml:"max_concurrency"`
	// MaxConns caps the open (kept-alive, reused) connections to this
	// backend; a call that finds none free fails over like a connection
	// error. Default 1024; 0 means no cap.
	MaxConns int `yaml:"max_conns"`
	// Timeouts bound each upstream request.
	Timeouts Timeouts `yaml:"timeouts"`
	// Health sets passive (and optional active) health checking.
	Health Health `yaml:"health"`
	// Metrics, when present, scrapes the backend's Prometheus metrics page
	// for its load (queue, running requests, KV-cache use), which the
	// inference_aware strategy reads. Default none: no scraping.
	Metrics *BackendMetrics `yaml:"metrics,omitempty"`
	// Sim holds simulator flags by name (e.g. model: sim-chat, profile:
	// small, itl: 5ms); kind sim only. Scalar values of any YAML type are
	// taken as their string form.
	Sim map[string]string `yaml:"sim,omitempty"`

	// Line is the backend's line in the file (0 when unknown).
	Line int `yaml:"-"`
}

// Timeouts bound each upstream request. Zero means no limit.
type Timeouts struct {
	// Connect bounds dialing the backend. Default "2s".
	Connect Duration `yaml:"connect"`
	// FirstByte bounds the wait for the response to start: for a stream,
	// the headers before its first event; a non-streamed completion arrives
	// whole, so for it this bounds the generation. Retries and fallbacks
	// happen only within it. Default "60s".
	FirstByte Duration `yaml:"first_byte"`
	// Idle is the longest gap allowed between stream events. Default "60s".
	Idle Duration `yaml:"idle"`
	// Total bounds the whole request, body included. Default "10m".
	Total Duration `yaml:"total"`
}

// Health sets health checking for a backend. Passive checking (outlier
// ejection with a circuit breaker, docs/routing.md) is on by default: after
// failure_threshold consecutive failures, or when its time to first byte
// is a latency outlier, the backend is taken out for a cool-down that
// doubles with repeated ejections, then half-open probe requests decide
// whether it is back.
type Health struct {
	// FailureThreshold is the number of consecutive failures (5xx answers,
	// transport errors, the backend's timeouts) that take the backend out.
	// Default 3; 0 disables ejection on failures.
	FailureThreshold int `yaml:"failure_threshold"`
	// Cooldown is how long a first ejection lasts. Default "10s"; must be
	// positive while FailureThreshold or LatencyFactor is above 0
	// (FailureThreshold 0, not a zero cooldown, turns passive ejection
	// off). A backend is never ejected when that would leave a pool with
	// no healthy target.
	Cooldown Duration `yaml:"cooldown"`
	// MaxCooldown caps the exponential back-off: the k-th ejection in a
	// row lasts min(cooldown * 2^k, max_cooldown). k grows by one with a
	// failed half-open probe and with an ejection soon after the backend
	// came back, and drops by one for each whole max_cooldown the backend
	// then served without being ejected. Default "5m"; must be at least
	// cooldown (equal: no back-off).
	MaxCooldown Duration `yaml:"max_cooldown"`
	// MaxEjectedPercent refuses an ejection of this backend that would
	// leave more than this share of the targets of one of its pools out
	// (ejected, or down by active checks); checked in every pool the
	// backend serves, at the moment of the ejection. Default 50; 1 to 100
	// (100: only the rule that a pool keeps one healthy target).
	MaxEjectedPercent int `yaml:"max_ejected_percent"`
	// HalfOpenRequests is how many probe requests at a time the backend
	// takes when its cool-down is over (its circuit half-open): the first
	// success closes the circuit, a failure opens it again for the next
	// back-off step. Default 1; 0 puts the backend back in full rotation
	// as soon as its cool-down ends.
	HalfOpenRequests int `yaml:"half_open_requests"`
	// LatencyFactor ejects the backend (reason latency) when its average
	// time to first byte is more than this many times the median of the
	// other targets' of its pools (in every pool it serves that has other
	// targets with enough samples). Default 0 (off); else above 1, e.g. 3.
	LatencyFactor float64 `yaml:"latency_factor"`
	// LatencyMin is the least average time to first byte that can count as
	// an outlier, so that small absolute times never do. Default "100ms".
	LatencyMin Duration `yaml:"latency_min"`
	// LatencyMinSamples is how many time-to-first-byte samples the backend,
	// and each target it is compared with, needs before the latency rule
	// judges it; after a latency ejection its samples start again.
	// Default 5; at least 1.
	LatencyMinSamples int `yaml:"latency_min_samples"`
	// Active, when present, probes the backend periodically. Default none.
	Active *ActiveHealth `yaml:"active,omitempty"`
}

// ActiveHealth probes a backend periodically with GET requests.
type ActiveHealth struct {
	// Path is the probed path, starting with "/". Default "/health".
	Path string `yaml:"path"`
	// Interval is the time between probes. Default "5s"; must be positive.
	// After a failed probe the next one comes sooner: after min(interval,
	// 1s), doubling with each further failure up to the interval, so a
	// backend that fails its first probe while starting up is back in
	// rotation soon after it is ready.
	Interval Duration `yaml:"interval"`
	// Timeout bounds each probe. Default "2s"; must be positive.
	Timeout Duration `yaml:"timeout"`
}

// Metrics kinds of a backend: whose metric names its page has.
const (
	MetricsKindVLLM   = "vllm"
	MetricsKindSGLang = "sglang"
	MetricsKindTGI    = "tgi"
	MetricsKindTriton = "triton"
)

// BackendMetrics scrapes a backend's Prometheus metrics page periodically.
// A scrape that fails (server down, too slow, a status other than 200, a
// page that does not parse or lacks the kind's metrics) records nothing:
// the last scrape ages, and one older than 3 * interval + timeout counts as
// no scrape, so routing uses the gateway's own counts for the backend.
type BackendMetrics struct {
	// Path is the metrics page, starting with "/". Default "/metrics".
	Path string `yaml:"path"`
	// Interval is the time between scrapes, spread by ±10%. Default
	// "100ms"; at least "10ms".
	Interval Duration `yaml:"interval"`
	// Timeout bounds each scrape. Default the interval, at most "1s"; must
	// be positive.
	Timeout Duration `yaml:"timeout"`
	// Kind names the server whose metric names the page has: vllm
	// (default), sglang, tgi or triton.
	Kind string `yaml:"kind"`
}

// Balancing strategies of a model pool.
const (
	StrategyRoundRobin       = "round_robin"
	StrategyWeighted         = "weighted"
	StrategyLeastOutstanding = "least_outstanding"
	StrategyInferenceAware   = "inference_aware"
	StrategyConsistentHash   = "consistent_hash"
)

// Model is a model pool: a public model name served by one or more backend
// targets.
type Model struct {
	// Name is the public model name that clients request and routes send
	// to. Required and unique.
	Name string `yaml:"name"`
	// Strategy picks a target per request: round_robin (default), weighted
	// (by target weight), least_outstanding (fewest requests in flight),
	// inference_aware (scored on the backends' queues, KV-cache use and
	// prefix affinity; see routing) or consistent_hash (by session key, see
	// routing.session). docs/routing.md says when to use which.
	Strategy string `yaml:"strategy"`
	// Routing tunes the inference_aware and consistent_hash strategies;
	// other strategies ignore it.
	Routing Routing `yaml:"routing,omitempty"`
	// Targets are the backends serving this pool. At least one.
	Targets []Target `yaml:"targets"`
	// Fallbacks are pools tried in order when every target of this pool
	// fails. Each must name another pool; cycles are not allowed.
	Fallbacks []string `yaml:"fallbacks,omitempty"`
	// Retry sets retries within the pool.
	Retry Retry `yaml:"retry"`
	// Limits apply to all requests to the pool, whoever sends them.
	Limits Limits `yaml:"limits,omitempty"`
	// Prices price the pool's tokens for budgets and the usage API.
	// Default none: requests to the pool cost nothing.
	Prices *Prices `yaml:"prices,omitempty"`
	// Batching turns on the gateway's dynamic batcher for the pool: the
	// embeddings and KServe v2 inference requests of concurrent callers
	// share upstream calls (legacy completions too, with
	// batching.completions). Default off. docs/batching.md.
	Batching *Batching `yaml:"batching,omitempty"`

	// Line is the pool's line in the file (0 when unknown).
	Line int `yaml:"-"`
}

// Batching is a pool's dynamic batcher (docs/batching.md): requests that
// may share an upstream call (same operation, model and parameters) are
// collected while the batches in flight run, and sent together.
type Batching struct {
	// MaxBatchSize bounds the items of one upstream call: embedding inputs,
	// completion prompts or tensor rows (the first dimension). Default 64;
	// 1 to 65536.
	MaxBatchSize int `yaml:"max_batch_size"`
	// MaxQueueDelay is how long a batch that is not full may wait for more
	// requests after its oldest arrived. Default 0: a batch takes only what
	// is already waiting (start there, measure, then raise it within the
	// latency budget). At most 10s.
	MaxQueueDelay Duration `yaml:"max_queue_delay"`
	// MaxTokens bounds the estimated tokens of one batch (4 bytes a token
	// of text; token arrays count their length). Default 0: no bound.
	MaxTokens int `yaml:"max_tokens"`
	// QueueSize bounds the requests waiting for a batch; beyond it a
	// request gets 503 with retry-after at once. Default 1024.
	QueueSize int `yaml:"queue_size"`
	// PriorityLevels is the number of priority levels, 1 the first served.
	// Default 1. A request's level is its x-switchyard-priority header
	// (1..priority_levels), else default_priority; a key of priority class
	// critical may take any level, standard ones default_priority or
	// lower, sheddable ones only the lowest.
	PriorityLevels int `yaml:"priority_levels"`
	// DefaultPriority is the level of a request that names none. Default
	// the middle level, (priority_levels+1)/2.
	DefaultPriority int `yaml:"default_priority"`
	// MaxInFlight bounds the pool's batches being sent at once; set it to
	// the calls the backends execute at once. Default 4 per target.
	MaxInFlight int `yaml:"max_in_flight"`
	// Completions also batches legacy completions (/v1/completions; their
	// prompts become one prompt array). Default false: only embeddings and
	// KServe v2 inference are batched. Chat completions never are.
	Completions bool `yaml:"completions"`
}

// Batching defaults.
const (
	DefaultBatchSize       = 64
	DefaultBatchQueueSize  = 1024
	DefaultBatchInFlight   = 4 // per target
	MaxBatchQueueDelay     = Duration(10 * time.Second)
	MaxBatchPriorityLevels = 16
	MaxBatchSizeLimit      = 65536
	MaxBatchQueueSizeLimit = 1 << 20
	MaxBatchInFlightLimit  = 4096
)

// Target is one backend of a model pool.
type Target struct {
	// Backend names a backend. Required.
	Backend string `yaml:"backend"`
	// Model is the model id sent to the backend. Default: the pool name.
	Model string `yaml:"model"`
	// Weight is the target's share with strategy weighted. Default 1. With
	// weighted, 0 means the target gets no traffic (a pool needs one target
	// of positive weight); other strategies ignore weights.
	Weight int `yaml:"weight"`
}

// Routing tunes the inference_aware and consistent_hash strategies.
type Routing struct {
	// Weights of inference_aware's scorers. Each scorer scores a target
	// from 0 to 1 and the largest weighted sum wins (ties at random); 0
	// turns a scorer off. docs/routing.md gives each formula.
	Weights RoutingWeights `yaml:"weights,omitempty"`
	// Saturation says when a backend is saturated: inference_aware then
	// skips it unless every target is, and a pool whose every target is
	// saturated sheds sheddable requests at admission.
	Saturation Saturation `yaml:"saturation,omitempty"`
	// PrefixIndex sizes each backend's index of the prompt prefixes sent to
	// it.
	PrefixIndex PrefixIndex `yaml:"prefix_index,omitempty"`
	// Session says where a request's session key comes from: for the
	// session scorer, and required by consistent_hash.
	Session Session `yaml:"session,omitempty"`
	// Replicas is consistent_hash's points on the hash ring per target
	// (times the target's weight). Default 100.
	Replicas int `yaml:"replicas,omitempty"`
}

// RoutingWeights are inference_aware's scorer weights.
type RoutingWeights struct {
	// Queue favours backends with fewer requests waiting (scraped, plus
	// the requests sent since the scrape; without metrics, the gateway's
	// requests in flight). Default 2.
	Queue float64 `yaml:"queue"`
	// KV favours backends with less KV cache in use (scraped). Default 2.
	KV float64 `yaml:"kv"`
	// Prefix favours the backend that was sent the longest part of the
	// prompt's prefix before, so probably has it cached. Default 3.
	Prefix float64 `yaml:"prefix"`
	// Tokens favours backends with fewer estimated prompt tokens in flight
	// from this gateway. Default 0.
	Tokens float64 `yaml:"tokens"`
	// TTFT favours backends with a lower moving average of the time to
	// first byte. Default 0.
	TTFT float64 `yaml:"ttft"`
	// Session adds its weight to the one target the request's session key
	// hashes to (rendezvous hashing), so a high weight makes sessions
	// sticky while that target is usable. Default 0; needs session.by.
	Session float64 `yaml:"session"`
}

// Saturation bounds; a backend at or over either one, by its fresh
// metrics, is saturated, and so is one whose metrics are stale.
type Saturation struct {
	// Queue is the number of waiting requests. Default 128; 0 = no bound.
	Queue float64 `yaml:"queue"`
	// KV is the fraction of KV cache in use, from 0 to 1. Default 0.95;
	// 0 = no bound.
	KV float64 `yaml:"kv"`
}

// PrefixIndex sizes the per-backend prefix index.
type PrefixIndex struct {
	// Blocks is the index's capacity in blocks of 256 prompt bytes (about
	// 64 tokens). Default 0: from the backend's scraped cache_config_info
	// (num_gpu_blocks * block_size tokens), else 16384 (about a million
	// tokens).
	Blocks int `yaml:"blocks"`
}

// Session key sources.
const (
	SessionByUser   = "user"
	SessionByHeader = "header"
	SessionByKey    = "key"
)

// Session says where a request's session key comes from.
type Session struct {
	// By is user (the request's OpenAI "user" field), header (the header
	// named by header) or key (the caller's API key id). Default none.
	By string `yaml:"by"`
	// Header names the header for by: header, e.g. x-session-id.
	Header string `yaml:"header,omitempty"`
}

// Retry sets retries within a pool. Requests are retried only before the
// first byte reaches the client.
type Retry struct {
	// Attempts is the number of tries per pool, the first included.
	// Default 2; at least 1.
	Attempts int `yaml:"attempts"`
	// Budget caps retries as a fraction of requests (0.2: at most one retry
	// per five requests), from 0 to 1. Default 0.2; 0 leaves only the
	// min_per_second retries.
	Budget float64 `yaml:"budget"`
	// MinPerSecond is the number of retries per second always allowed,
	// whatever the budget. Default 5; 0 means none beyond the budget (with
	// budget 0 too, no retries at all).
	MinPerSecond int `yaml:"min_per_second"`
}

// Route matches requests and says what happens to them.
type Route struct {
	// Name identifies the route in logs and metrics. Required and unique.
	Name string `yaml:"name"`
	// Match selects requests; an empty match selects every request.
	Match Match `yaml:"match"`
	// Chain lists the stages run in order, each a bare kind ("ratelimit")
	// or a kind with options ({retrieval: {collection: kb}}).
	Chain []StageRef `yaml:"chain,omitempty"`
	// To names the model pool that serves the route. Empty passes the
	// requested model through to the pool of that name.
	To string `yaml:"to,omitempty"`
	// Timeout bounds a whole exchange of the route, from accept to the last
	// byte of its answer (retries, fallbacks, stage waits and streams
	// included): past it the upstream call is cancelled, and the client gets
	// a 504, or an error event mid-stream. Default 0: none (the backends'
	// own timeouts still apply).
	Timeout Duration `yaml:"timeout,omitempty"`

	// Line is the route's line in the file (0 when unknown).
	Line int `yaml:"-"`
}

// Match selects requests. Every condition given must hold; globs use the
// router's syntax: '*' any run of characters, '?' one character.
type Match struct {
	// Model is a glob or a list of globs on the requested model name.
	Model StringList `yaml:"model,omitempty"`
	// Header maps header names to globs on their values.
	Header map[string]string `yaml:"header,omitempty"`
	// Key is a key id or a list of them (exact names).
	Key StringList `yaml:"key,omitempty"`
	// Tenant is a tenant name or a list of them (exact names).
	Tenant StringList `yaml:"tenant,omitempty"`
	// Metadata maps request metadata keys to globs on their values.
	Metadata map[string]string `yaml:"metadata,omitempty"`
	// MinPromptBytes matches prompts of at least this many bytes. Default 0.
	MinPromptBytes int `yaml:"min_prompt_bytes,omitempty"`
	// MaxPromptBytes matches prompts of at most this many bytes. Default 0,
	// no limit.
	MaxPromptBytes int `yaml:"max_prompt_bytes,omitempty"`
}

// Key is one API key accepted by the gateway.
type Key struct {
	// ID names the key in logs, metrics and route matches. Required and
	// unique.
	ID string `yaml:"id"`
	// SHA256 is the hex SHA-256 of the key (64 hex digits, e.g. from
	// "printf %s "$KEY" | sha256sum"). Required and unique.
	SHA256 string `yaml:"sha256"`
	// Tenant is the tenant the key belongs to: one of tenants[]. Optional.
	Tenant string `yaml:"tenant,omitempty"`
	// Models are globs on the model pools the key may use. Empty allows
	// all (within its tenant's).
	Models StringList `yaml:"models,omitempty"`
	// Priority is the key's class when pools are at capacity: critical,
	// standard or sheddable. Default: its tenant's, else standard.
	Priority string `yaml:"priority,omitempty"`
	// Limits apply to the key's requests, whatever their route.
	Limits Limits `yaml:"limits,omitempty"`
	// ModelLimits maps globs on model pool names to limits (rpm, tpm) on
	// the key's requests to the pools that match.
	ModelLimits map[string]Limits `yaml:"model_limits,omitempty"`
	// Budget caps the key's spend.
	Budget Budget `yaml:"budget,omitempty"`
	// Metadata is free-form labels, shown by the admin API.
	Metadata map[string]string `yaml:"metadata,omitempty"`

	// Line is the key's line in the file (0 when unknown).
	Line int `yaml:"-"`
}

// Load reads, expands, decodes, defaults and validates the config file at
// path. On failure it returns *Errors (or the read error).
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	return Parse(data, path)
}

// Parse is Load from bytes; filename names the source in errors. ${VAR}
// references are looked up in the process environment.
func Parse(data []byte, filename string) (*Config, error) {
	return ParseEnv(data, filename, os.LookupEnv)
}

// ParseEnv is Parse with ${VAR} references looked up by lookup instead of
// the process environment (for tests and for embedding); a nil lookup
// means the process environment.
func ParseEnv(data []byte, filename string, lookup func(string) (string, bool)) (*Config, error) {
	if lookup == nil {
		lookup = os.LookupEnv
	}
	errs := &errorList{file: filename}
	c := &Config{File: filename, Raw: data, pos: map[string]pos{}}

	root, ok := parseYAML(data, errs)
	if !ok {
		return nil, errs.err() // malformed YAML: nothing further to check
	}
	if root != nil {
		d := &decoder{errs: errs, pos: c.pos, envErr: expandTree(root, lookup), extensions: true}
		d.decode(root, "", valueOf(c))
		// ${ENV} problems in places the decoder never reached (under an
		// unknown key, say) are still problems.
		for _, ps := range d.envErr {
			for _, p := range ps {
				errs.add(p.pos, "", p.msg)
			}
		}
	}
	// Paths that failed to decode: validation problems at or under them
	// would only repeat those errors.
	bad := make([]string, 0, len(errs.errs))
	for _, e := range errs.errs {
		bad = append(bad, e.Path)
	}
	c.setLines()
	c.SetDefaults()
	c.validate(errs, bad)
	if err := errs.err(); err != nil {
		return nil, err
	}
	return c, nil
}

// Errorf returns an Error at path (such as "routes[0].chain[1]"), placed at
// the position of path in the file, or of its nearest ancestor that was
// there. The gateway uses it for problems it finds itself (an unknown stage
// kind), so that they read like this package's.
func (c *Config) Errorf(path, format string, args ...any) Error {
	p := c.posOf(path)
	return Error{File: c.File, Line: p.line, Column: p.col, Path: path, Msg: fmt.Sprintf(format, args...)}
}

// setLines fills the Line fields from the decoded positions.
func (c *Config) setLines() {
	for i := range c.Backends {
		c.Backends[i].Line = c.posOf(indexPath("backends", i)).line
	}
	for i := range c.Models {
		c.Models[i].Line = c.posOf(indexPath("models", i)).line
	}
	for i := range c.Routes {
		c.Routes[i].Line = c.posOf(indexPath("routes", i)).line
	}
	for i := range c.Keys {
		c.Keys[i].Line = c.posOf(indexPath("keys", i)).line
	}
	for i := range c.Collections {
		c.Collections[i].Line = c.posOf(indexPath("collections", i)).line
	}
	for i := range c.Tools.MCP {
		c.Tools.MCP[i].Line = c.posOf(indexPath(mcpServersPath, i)).line
	}
}

// Redacted returns YAML of the effective config (defaults applied) with
// secrets shown as "[redacted]", for the admin API and for golden tests.
func (c *Config) Redacted() ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return nil, fmt.Errorf("encoding config: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encoding config: %w", err)
	}
	return b.Bytes(), nil
}
