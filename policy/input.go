package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"unicode/utf8"

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

// The input's keys, and the values most requests share, are built once:
// OPA does not modify the terms of an input, and an evaluation's input is
// built on every request.
var (
	keyPhase     = ast.StringTerm("phase")
	keyPrincipal = ast.StringTerm("principal")
	keyRoute     = ast.StringTerm("route")
	keyModel     = ast.StringTerm("model")
	keyOperation = ast.StringTerm("operation")
	keyMessages  = ast.StringTerm("messages")
	keyPrompt    = ast.StringTerm("prompt")
	keyTools     = ast.StringTerm("tools")
	keyMetadata  = ast.StringTerm("metadata")
	keyTokens    = ast.StringTerm("token_estimate")
	keyOutput    = ast.StringTerm("output")
	keyKeyID     = ast.StringTerm("key_id")
	keyTenant    = ast.StringTerm("tenant")
	keyGroups    = ast.StringTerm("groups")
	keyRole      = ast.StringTerm("role")
	keyContent   = ast.StringTerm("content")

	common = func() map[string]*ast.Term {
		m := map[string]*ast.Term{}
		for _, s := range []string{"", "request", "response", "system", "user", "assistant", "tool", "developer"} {
			m[s] = ast.StringTerm(s)
		}
		return m
	}()
)

func str(s string) *ast.Term {
	if t, ok := common[s]; ok {
		return t
	}
	return ast.StringTerm(s)
}

func strMap(m map[string]string) *ast.Term {
	if len(m) == 0 {
		return ast.InternedEmptyObject
	}
	items := make([][2]*ast.Term, 0, len(m))
	for k, v := range m {
		items = append(items, ast.Item(str(k), str(v)))
	}
	return ast.ObjectTerm(items...)
}

func strList(l []string) *ast.Term {
	if len(l) == 0 {
		return ast.InternedEmptyArray
	}
	ts := make([]*ast.Term, len(l))
	for i, s := range l {
		ts[i] = str(s)
	}
	return ast.ArrayTerm(ts...)
}

// value is the input as an OPA value.
func (in *Input) value() ast.Value {
	principal := ast.InternedNullTerm
	if p := in.Principal; p != nil {
		principal = ast.ObjectTerm(
			ast.Item(keyKeyID, str(p.KeyID)),
			ast.Item(keyTenant, str(p.Tenant)),
			ast.Item(keyGroups, strList(p.Groups)),
			ast.Item(keyMetadata, strMap(p.Metadata)))
	}
	msgs := make([]*ast.Term, len(in.Messages))
	for i, m := range in.Messages {
		msgs[i] = ast.ObjectTerm(ast.Item(keyRole, str(m.Role)), ast.Item(keyContent, str(m.Content)))
	}
	return ast.NewObject(
		ast.Item(keyPhase, str(in.Phase)),
		ast.Item(keyPrincipal, principal),
		ast.Item(keyRoute, str(in.Route)),
		ast.Item(keyModel, str(in.Model)),
		ast.Item(keyOperation, str(in.Operation)),
		ast.Item(keyMessages, ast.ArrayTerm(msgs...)),
		ast.Item(keyPrompt, str(in.Prompt)),
		ast.Item(keyTools, strList(in.Tools)),
		ast.Item(keyMetadata, strMap(in.Metadata)),
		ast.Item(keyTokens, ast.IntNumberTerm(int(in.TokenEstimate))),
		ast.Item(keyOutput, str(in.Output)))
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

// appendJSON appends the input document as JSON, the same document value
// builds (for the WebAssembly evaluator, which parses JSON). With noTexts,
// the texts (the prompt, the messages' contents, the output) are empty
// strings, for the evaluator to point at the texts themselves. It reports
// false when a string is not valid UTF-8: the two evaluators could then
// read different text, so such an input goes to OPA's interpreter.
func (in *Input) appendJSON(dst []byte, noTexts bool) ([]byte, bool) {
	ok := true
	s := func(dst []byte, v string) []byte {
		ok = ok && utf8.ValidString(v)
		return appendJSONString(dst, v)
	}
	text := func(dst []byte, v string) []byte {
		if noTexts {
			ok = ok && utf8.ValidString(v)
			return append(dst, `""`...)
		}
		return s(dst, v)
	}
	list := func(dst []byte, l []string) []byte {
		dst = append(dst, '[')
		for i, v := range l {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = s(dst, v)
		}
		return append(dst, ']')
	}
	obj := func(dst []byte, m map[string]string) []byte {
		dst = append(dst, '{')
		first := true
		for k, v := range m {
			if !first {
				dst = append(dst, ',')
			}
			first = false
			dst = append(s(dst, k), ':')
			dst = s(dst, v)
		}
		return append(dst, '}')
	}
	dst = append(dst, `{"phase":`...)
	dst = s(dst, in.Phase)
	dst = append(dst, `,"principal":`...)
	if p := in.Principal; p != nil {
		dst = append(dst, `{"key_id":`...)
		dst = s(dst, p.KeyID)
		dst = append(dst, `,"tenant":`...)
		dst = s(dst, p.Tenant)
		dst = append(dst, `,"groups":`...)
		dst = list(dst, p.Groups)
		dst = append(dst, `,"metadata":`...)
		dst = append(obj(dst, p.Metadata), '}')
	} else {
		dst = append(dst, "null"...)
	}
	dst = append(dst, `,"route":`...)
	dst = s(dst, in.Route)
	dst = append(dst, `,"model":`...)
	dst = s(dst, in.Model)
	dst = append(dst, `,"operation":`...)
	dst = s(dst, in.Operation)
	dst = append(dst, `,"messages":[`...)
	for i, m := range in.Messages {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"role":`...)
		dst = s(dst, m.Role)
		dst = append(dst, `,"content":`...)
		dst = append(text(dst, m.Content), '}')
	}
	dst = append(dst, `],"prompt":`...)
	dst = text(dst, in.Prompt)
	dst = append(dst, `,"tools":`...)
	dst = list(dst, in.Tools)
	dst = append(dst, `,"metadata":`...)
	dst = obj(dst, in.Metadata)
	dst = append(dst, `,"token_estimate":`...)
	dst = strconv.AppendInt(dst, in.TokenEstimate, 10)
	dst = append(dst, `,"output":`...)
	dst = text(dst, in.Output)
	return append(dst, '}'), ok
}
