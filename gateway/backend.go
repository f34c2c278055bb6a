package gateway

import (
	"io"
	"log/slog"

	"switchyard/gateway/config"
)

// BackendKind turns a config backend of one kind (`kind:` in the YAML) into
// something the gateway can call. Kinds are registered like stages: the
// binary adds them explicitly (Registry.RegisterBackend); NewRegistry knows
// only openai, the gateway's own protocol.
type BackendKind struct {
	Name string
	Doc  string // one line for listings and docs
	// Open checks b's kind-specific settings and, when env.Start is set,
	// starts what the backend needs (an embedded server, say). With
	// env.Start false (switchyard validate) it only checks: it listens
	// nowhere and leaves nothing running. Its error is reported under the
	// backend's file:line.
	Open func(env *BackendEnv, b *config.Backend) (Backend, error)
}

// BackendEnv is what a kind may use while it opens a backend.
type BackendEnv struct {
	Log *slog.Logger
	// Start says whether to start what the backend needs; false when a
	// config is only being validated.
	Start bool
}

// Backend is what a kind gives the gateway for one config backend: today,
// the base URL of an OpenAI-compatible server, which the gateway's pooled
// client calls. A kind that speaks another protocol (KServe v2) will add
// its adapter here, as a new field, without changing the existing kinds.
type Backend struct {
	// URL is the server's base URL. It may be "" when BackendEnv.Start is
	// false: the client is then built against an address never dialed.
	URL string
	// Closer, when set, stops what Open started; it runs when the
	// generation retires, after the backend's client is closed.
	Closer io.Closer
}

// OpenAIBackend is the kind openai: a server at the backend's url, already
// checked by the config package.
var OpenAIBackend = BackendKind{
	Name: config.KindOpenAI,
	Doc:  "an OpenAI-compatible HTTP server at url (vLLM, SGLang, TGI, llama.cpp, Ollama, OpenAI, ...)",
	Open: func(_ *BackendEnv, b *config.Backend) (Backend, error) { return Backend{URL: b.URL}, nil },
}

// KServeBackend is the kind kserve: a KServe v2 or Triton server at the
// backend's url, speaking the Open Inference Protocol (its /v2 paths). Its
// active health check defaults to /v2/health/ready and its metrics kind to
// triton.
var KServeBackend = BackendKind{
	Name: config.KindKServe,
	Doc:  "a KServe v2 / Triton server at url (Open Inference Protocol, /v2/models/{name}/infer)",
	Open: func(_ *BackendEnv, b *config.Backend) (Backend, error) { return Backend{URL: b.URL}, nil },
}

// unstartedURL stands for a backend that was checked but not started.
const unstartedURL = "http://127.0.0.1:1"
