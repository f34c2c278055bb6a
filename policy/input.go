package policy

import (
	"crypto/sha256"
	"encoding/hex"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Input is the document a policy sees as input. It is turned into OPA's
// value directly (no reflection, no JSON round trip).
type Input struct {
	Phase     string // request or response
	Principal *Principal
	Route     string
	Model     string
	Operation string
	Messages  []Message
	// Prompt is the input text joined: the messages' contents, a
	// completion's prompt, an embeddings input.
	Prompt        string
	Tools         []string
	Metadata      map[string]string
	TokenEstimate int64
	// Output is the answer text (response phase): whole, or a stream's
	// window.
	Output string
}

// Principal is the caller.
type Principal struct {
	KeyID    string
	Tenant   string
	Groups   []string
	Metadata map[string]string
}

// Message is one message's role and text.
type Message struct{ Role, Content string }

func str(s string) *ast.Term { return ast.StringTerm(s) }

func strMap(m map[string]string) *ast.Term {
	o := ast.NewObject()
	for k, v := range m {
		o.Insert(str(k), str(v))
	}
	return ast.NewTerm(o)
}

func strList(l []string) *ast.Term {
	ts := make([]*ast.Term, len(l))
	for i, s := range l {
		ts[i] = str(s)
	}
	return ast.ArrayTerm(ts...)
}

// value is the input as an OPA value.
func (in *Input) value() ast.Value {
	o := ast.NewObject()
	o.Insert(str("phase"), str(in.Phase))
	if p := in.Principal; p != nil {
		po := ast.NewObject()
		po.Insert(str("key_id"), str(p.KeyID))
		po.Insert(str("tenant"), str(p.Tenant))
		po.Insert(str("groups"), strList(p.Groups))
		po.Insert(str("metadata"), strMap(p.Metadata))
		o.Insert(str("principal"), ast.NewTerm(po))
	} else {
		o.Insert(str("principal"), ast.NullTerm())
	}
	o.Insert(str("route"), str(in.Route))
	o.Insert(str("model"), str(in.Model))
	o.Insert(str("operation"), str(in.Operation))
	msgs := make([]*ast.Term, len(in.Messages))
	for i, m := range in.Messages {
		mo := ast.NewObject()
		mo.Insert(str("role"), str(m.Role))
		mo.Insert(str("content"), str(m.Content))
		msgs[i] = ast.NewTerm(mo)
	}
	o.Insert(str("messages"), ast.ArrayTerm(msgs...))
	o.Insert(str("prompt"), str(in.Prompt))
	o.Insert(str("tools"), strList(in.Tools))
	o.Insert(str("metadata"), strMap(in.Metadata))
	o.Insert(str("token_estimate"), ast.IntNumberTerm(int(in.TokenEstimate)))
	o.Insert(str("output"), str(in.Output))
	return o
}

// Hash is a SHA-256 of the input's text (prompt and output), for decision
// logs that must not hold the text itself.
func (in *Input) Hash() string {
	h := sha256.New()
	h.Write([]byte(in.Prompt))
	h.Write([]byte{0})
	h.Write([]byte(in.Output))
	return hex.EncodeToString(h.Sum(nil)[:12])
}
