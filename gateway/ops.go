package gateway

import (
	"bytes"
	"strings"
)

// Op is the API operation of an exchange: an index into the operations
// table.
type Op uint8

// The operations the gateway serves, in the order of the operations table.
const (
	OpChat Op = iota
	OpCompletions
	OpEmbeddings
	OpResponses
	OpResponseGet
	// The Open Inference Protocol (KServe v2 REST), model from the path:
	// POST /v2/models/{name}[/versions/{v}]/infer, GET its metadata and
	// GET .../ready.
	OpV2Infer
	OpV2Model
	OpV2ModelReady
)

// ModelFrom says where an operation's model name comes from.
type ModelFrom uint8

const (
	// ModelFromBody: the body's top-level "model" field.
	ModelFromBody ModelFrom = iota
	// ModelFromStored: the operation reads a stored object (GET
	// /v1/responses/{id}); it goes to the pool and backend that made it.
	ModelFromStored
	// ModelFromPath: the model is the path segment after Path (KServe v2:
	// /v2/models/{name}/...); it goes upstream as the target's model name.
	ModelFromPath
)

// Operation is one row of the operations table: an API the gateway serves,
// how requests to it are routed and how its answers stream. A new API (the
// Batch API, KServe v2 inference) is a new row.
type Operation struct {
	// Name labels the operation in metrics and logs.
	Name string
	// Method is the HTTP method of the API.
	Method string
	// Path is the API path; one ending in "/" takes one more path segment
	// (an object id), passed upstream as it came.
	Path string
	// Model says where the model name comes from.
	Model ModelFrom
	// Body: requests carry a JSON body (scanned for model, stream, ...).
	Body bool
	// Streams: the body's "stream": true asks for an SSE answer.
	Streams bool
	// DoneEvent: its streams end with "data: [DONE]" (a stream that closes
	// without it ended abnormally).
	DoneEvent bool
	// StreamUsage: its streams report usage when asked with
	// stream_options.include_usage.
	StreamUsage bool
	// Batchable: the dispatch layer may batch requests of several callers
	// (embeddings, legacy completions with prompt arrays, KServe v2
	// inference) when the pool has batching on.
	Batchable bool
	// KServe: an Open Inference Protocol operation; its errors are
	// {"error": "..."}, and Tail is the rest of its path after the model.
	KServe bool
	// Tail is what follows the model (and an optional /versions/{v}) in a
	// KServe path.
	Tail string
}

// operations is the table, indexed by Op.
var operations = [...]Operation{
	OpChat:         {Name: "chat", Method: "POST", Path: "/v1/chat/completions", Body: true, Streams: true, DoneEvent: true, StreamUsage: true},
	OpCompletions:  {Name: "completions", Method: "POST", Path: "/v1/completions", Body: true, Streams: true, DoneEvent: true, StreamUsage: true},
	OpEmbeddings:   {Name: "embeddings", Method: "POST", Path: "/v1/embeddings", Body: true, Batchable: true},
	OpResponses:    {Name: "responses", Method: "POST", Path: "/v1/responses", Body: true, Streams: true},
	OpResponseGet:  {Name: "responses_get", Method: "GET", Path: "/v1/responses/", Model: ModelFromStored},
	OpV2Infer:      {Name: "v2_infer", Method: "POST", Path: "/v2/models/", Model: ModelFromPath, Body: true, Batchable: true, KServe: true, Tail: "/infer"},
	OpV2Model:      {Name: "v2_model", Method: "GET", Path: "/v2/models/", Model: ModelFromPath, KServe: true},
	OpV2ModelReady: {Name: "v2_model_ready", Method: "GET", Path: "/v2/models/", Model: ModelFromPath, KServe: true, Tail: "/ready"},
}

// Operation returns the operation's row of the table.
func (o Op) Operation() *Operation { return &operations[o] }

// Path is the API path of the operation.
func (o Op) Path() string { return operations[o].Path }

func (o Op) String() string { return operations[o].Name }

// Operations returns the table, for documentation and tools.
func Operations() []Operation { return operations[:] }

// lookupOp finds the operation serving path: an exact path, or a prefix
// one ending in "/" followed by one non-empty segment (returned as arg), or
// a KServe model path (arg: the model name and what follows it).
func lookupOp(path []byte) (op Op, arg []byte, ok bool) {
	if bytes.HasPrefix(path, v2Models) {
		return lookupV2(path[len(v2Models):])
	}
	for i := range operations {
		if operations[i].KServe {
			continue
		}
		p := operations[i].Path
		if strings.HasSuffix(p, "/") {
			if len(path) > len(p) && string(path[:len(p)]) == p && bytes.IndexByte(path[len(p):], '/') < 0 {
				return Op(i), path[len(p):], true
			}
			continue
		}
		if string(path) == p {
			return Op(i), nil, true
		}
	}
	return 0, nil, false
}

var v2Models = []byte("/v2/models/")

// lookupV2 finds the KServe operation of rest, the path after /v2/models/:
// {name}[/versions/{v}][/ready|/infer].
func lookupV2(rest []byte) (op Op, arg []byte, ok bool) {
	name := rest
	if i := bytes.IndexByte(rest, '/'); i >= 0 {
		name = rest[:i]
	}
	if len(name) == 0 {
		return 0, nil, false
	}
	tail := rest[len(name):]
	if v, ok := bytes.CutPrefix(tail, []byte("/versions/")); ok {
		i := bytes.IndexByte(v, '/')
		if i < 0 {
			i = len(v)
		}
		if i == 0 {
			return 0, nil, false
		}
		tail = v[i:]
	}
	switch string(tail) {
	case "":
		return OpV2Model, rest, true
	case "/ready":
		return OpV2ModelReady, rest, true
	case "/infer":
		return OpV2Infer, rest, true
	}
	return 0, nil, false
}

// splitModelPath splits a KServe op's arg into the model name and the rest
// of the path after it ([/versions/{v}][/ready|/infer]).
func splitModelPath(arg []byte) (name, rest []byte) {
	if i := bytes.IndexByte(arg, '/'); i >= 0 {
		return arg[:i], arg[i:]
	}
	return arg, nil
}
