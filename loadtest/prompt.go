package loadtest

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"sort"
	"strconv"
	"sync"
)

// vocabulary holds JSON-safe words; one word stands for about one token.
var vocabulary = [...]string{
	"the", "of", "and", "to", "in", "is", "for", "that", "with", "on",
	"as", "it", "by", "this", "be", "are", "from", "or", "at", "an",
	"which", "not", "can", "has", "more", "will", "one", "all", "their", "new",
	"data", "model", "system", "request", "server", "network", "time", "value", "result", "number",
	"table", "query", "cache", "route", "token", "stream", "batch", "policy", "user", "team",
	"answer", "question", "explain", "summarize", "compare", "list", "describe", "write", "short", "long",
	"river", "mountain", "city", "garden", "engine", "planet", "music", "history", "market", "energy",
	"light", "water", "signal", "memory", "window", "bridge", "forest", "language", "letter", "paper",
}

// paraphraseLeads are prepended to a repeated prompt to make a paraphrase:
// the same request in slightly different words.
var paraphraseLeads = [...]string{
	"Please ", "Could you ", "In other words, ", "Quick question: ", "Briefly, ", "Kindly ",
}

// historySize is how many earlier prompts per kind can be repeated.
const historySize = 256

// promptSpec determines a prompt completely: the words come from seed.
type promptSpec struct {
	seed      uint64
	words     int
	maxTokens int
	prefix    bool
	tenant    int32 // multi-tenant scenario: the tenant, from 0; -1 none
	user      int32 // the tenant's user, from 0
}

type history struct {
	items [historySize]promptSpec
	n     int
	next  int
}

func (h *history) add(p promptSpec) {
	h.items[h.next] = p
	h.next = (h.next + 1) % historySize
	if h.n < historySize {
		h.n++
	}
}

// generator decides what each request is (kind, prompt, key) and builds its
// body. Decisions are serialized by mu and come from one seeded source, so
// a run with one scheduling goroutine (open loop) is reproducible; bodies
// are built outside the lock.
type generator struct {
	mu       sync.Mutex
	rng      *rand.Rand
	cum      [numKinds]float64 // cumulative kind weights, normalized to 1
	hist     [numKinds]history
	keyNext  int
	keyPick  string
	keys     [][]byte // "Bearer KEY"
	prompt   Dist
	output   Dist
	prefixP  float64
	repeatP  float64
	paraP    float64
	model    []byte // JSON string, quoted
	embed    []byte // JSON string, quoted
	prefix   []byte // shared system prompt, JSON-safe
	ignoreEO bool
	// The multi-tenant shared-prefix scenario: each tenant's context
	// (JSON-safe), the cumulative tenant weights (normalized to 1) and the
	// users per tenant. No tenants: off.
	tenants   [][]byte
	tenantCum []float64
	users     int
}

func newGenerator(cfg Config) (*generator, error) {
	w, err := cfg.kindWeights()
	if err != nil {
		return nil, err
	}
	g := &generator{
		rng:      rand.New(rand.NewPCG(uint64(cfg.Seed), 0x5377_6974_6368)),
		keyPick:  cfg.KeyPick,
		prompt:   cfg.PromptTokens,
		output:   cfg.OutputTokens,
		prefixP:  cfg.SharedPrefixRatio,
		repeatP:  cfg.RepeatRatio,
		paraP:    cfg.ParaphraseRatio,
		ignoreEO: cfg.IgnoreEOS,
	}
	var sum float64
	for _, v := range w {
		sum += v
	}
	var acc float64
	for i, v := range w {
		acc += v / sum
		g.cum[i] = acc
	}
	g.cum[numKinds-1] = 1 // guard against rounding
	for _, k := range cfg.APIKeys {
		g.keys = append(g.keys, []byte("Bearer "+k))
	}
	if g.model, err = json.Marshal(cfg.Model); err != nil {
		return nil, err
	}
	if g.embed, err = json.Marshal(cfg.EmbedModel); err != nil {
		return nil, err
	}
	g.prefix = appendWords(nil, uint64(cfg.Seed)^0x7072_6566_6978, cfg.SharedPrefixTokens)
	if cfg.PrefixTenants > 0 {
		g.users = cfg.PrefixUsers
		g.tenants = make([][]byte, cfg.PrefixTenants)
		g.tenantCum = make([]float64, cfg.PrefixTenants)
		var sum float64
		for t := range g.tenants {
			g.tenants[t] = appendWords(nil, uint64(cfg.Seed)^0x7465_6e61_6e74^(uint64(t+1)*0x9e37_79b9_7f4a_7c15), cfg.PrefixTokens)
			sum += math.Pow(float64(t+1), -cfg.PrefixSkew)
			g.tenantCum[t] = sum
		}
		for t := range g.tenantCum {
			g.tenantCum[t] /= sum
		}
		g.tenantCum[len(g.tenantCum)-1] = 1 // guard against rounding
	}
	return g, nil
}

// pickTenant draws a tenant and one of its users. Called with mu held.
func (g *generator) pickTenant() (tenant, user int32) {
	t := sort.SearchFloat64s(g.tenantCum, g.rng.Float64())
	if t >= len(g.tenantCum) { // Float64 < 1 = the last bound; defensive
		t = len(g.tenantCum) - 1
	}
	return int32(t), int32(g.rng.IntN(g.users))
}

// pick chooses the next request: its kind, its prompt and its key.
func (g *generator) pick() (k kind, p promptSpec, paraphrase bool, auth []byte) {
	g.mu.Lock()
	defer g.mu.Unlock()
	r := g.rng.Float64()
	for k = 0; k < numKinds-1 && r >= g.cum[k]; k++ {
	}
	if len(g.keys) > 0 {
		i := g.keyNext
		if g.keyPick == KeyRandom {
			i = g.rng.IntN(len(g.keys))
		} else {
			g.keyNext = (g.keyNext + 1) % len(g.keys)
		}
		auth = g.keys[i]
	}
	h := &g.hist[k]
	if g.repeatP > 0 && h.n > 0 && g.rng.Float64() < g.repeatP {
		p = h.items[g.rng.IntN(h.n)]
		paraphrase = g.paraP > 0 && g.rng.Float64() < g.paraP
		return k, p, paraphrase, auth
	}
	p = promptSpec{
		seed:      g.rng.Uint64(),
		words:     g.prompt.Sample(g.rng),
		maxTokens: g.output.Sample(g.rng),
		prefix:    k != kindEmbeddings && g.prefixP > 0 && g.rng.Float64() < g.prefixP,
		tenant:    -1,
	}
	if k != kindEmbeddings && len(g.tenants) > 0 {
		p.tenant, p.user = g.pickTenant()
	}
	if g.repeatP > 0 {
		h.add(p)
	}
	return k, p, false, auth
}

// appendBody appends the JSON body of a request of kind k for prompt p.
func (g *generator) appendBody(dst []byte, k kind, p promptSpec, paraphrase bool) []byte {
	text := func(dst []byte) []byte {
		if paraphrase {
			dst = append(dst, paraphraseLeads[p.seed%uint64(len(paraphraseLeads))]...)
		}
		return appendWords(dst, p.seed, p.words)
	}
	switch k {
	case kindEmbeddings:
		dst = append(dst, `{"model":`...)
		dst = append(dst, g.embed...)
		dst = append(dst, `,"input":"`...)
		dst = text(dst)
		return append(dst, `"}`...)
	case kindCompletions:
		dst = append(dst, `{"model":`...)
		dst = append(dst, g.model...)
		dst = append(dst, `,"prompt":"`...)
		if p.tenant >= 0 {
			dst = append(dst, g.tenants[p.tenant]...)
			dst = append(dst, `\n\n`...)
		} else if p.prefix {
			dst = append(dst, g.prefix...)
			dst = append(dst, `\n\n`...)
		}
		dst = text(dst)
		dst = append(dst, '"')
	default:
		dst = append(dst, `{"model":`...)
		dst = append(dst, g.model...)
		dst = append(dst, `,"messages":[`...)
		if p.tenant >= 0 {
			dst = append(dst, `{"role":"system","content":"`...)
			dst = append(dst, g.tenants[p.tenant]...)
			dst = append(dst, `"},`...)
		} else if p.prefix {
			dst = append(dst, `{"role":"system","content":"`...)
			dst = append(dst, g.prefix...)
			dst = append(dst, `"},`...)
		}
		dst = append(dst, `{"role":"user","content":"`...)
		dst = text(dst)
		dst = append(dst, `"}]`...)
	}
	dst = append(dst, `,"max_tokens":`...)
	dst = strconv.AppendInt(dst, int64(p.maxTokens), 10)
	if p.tenant >= 0 {
		dst = append(dst, `,"user":"tenant`...)
		dst = strconv.AppendInt(dst, int64(p.tenant), 10)
		dst = append(dst, `-user`...)
		dst = strconv.AppendInt(dst, int64(p.user), 10)
		dst = append(dst, '"')
	}
	if g.ignoreEO {
		dst = append(dst, `,"ignore_eos":true`...)
	}
	if k == kindStream {
		dst = append(dst, `,"stream":true,"stream_options":{"include_usage":true}`...)
	}
	return append(dst, '}')
}

// appendWords appends n words drawn from seed, separated by spaces.
func appendWords(dst []byte, seed uint64, n int) []byte {
	var src rand.PCG
	src.Seed(seed, seed^0x9e37_79b9_7f4a_7c15)
	var bits uint64
	for i := range n {
		if i%8 == 0 {
			bits = src.Uint64()
		}
		if i > 0 {
			dst = append(dst, ' ')
		}
		dst = append(dst, vocabulary[int(bits&0xff)%len(vocabulary)]...)
		bits >>= 8
	}
	return dst
}

// kindPath is the API path of each kind, relative to the base URL.
var kindPath = [numKinds]string{
	kindChat:        "/v1/chat/completions",
	kindStream:      "/v1/chat/completions",
	kindCompletions: "/v1/completions",
	kindEmbeddings:  "/v1/embeddings",
}
