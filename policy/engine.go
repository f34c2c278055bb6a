// Package policy is the guard's engine: Open Policy Agent (v1, in
// process) over the Rego modules of a policy directory. Load compiles them
// once per config generation, runs their Rego tests (a failing test rejects
// the config), prepares the query, partially evaluated against the
// settings (see prepare), and checks that the decision has the documented
// shape; Eval then evaluates one input document.
//
// The query is data.switchyard.decision, an object:
//
//	{"allow": bool,
//	 "deny":   [{"policy": id, "kind": "access"|"content", "reason": text}],
//	 "redact": [{"policy": id, "text": substring, "replacement": text}],
//	 "review": [{"policy": id, "reason": text}],
//	 "tags":   [label],
//	 "route":  pool (optional), "cap": {"max_tokens": n, "temperature": t} (optional)}
package policy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/tester"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// Query is what the engine evaluates.
const Query = "data.switchyard.decision"

// Options configure Load.
type Options struct {
	// Dir holds the .rego modules (recursively); *_test.rego files are
	// the tests.
	Dir string
	// Data is put under data.switchyard.config.
	Data map[string]any
	// SkipTests does not run the Rego tests. They run without Data.
	SkipTests bool
	// Evaluator is EvaluatorAuto (the default, ""), EvaluatorWasm or
	// EvaluatorInterpreter.
	Evaluator string
	// OnFallback, when set, is called when an evaluation the WebAssembly
	// evaluator could not finish is handed to the interpreter (with why).
	OnFallback func(error)

	// plain prepares the query without partial evaluation (for the test
	// that compares the two).
	plain bool
}

// The evaluators.
const (
	// EvaluatorAuto is the WebAssembly evaluator when it takes the policy
	// set, else OPA's interpreter (Engine.Evaluator says which, and why).
	EvaluatorAuto = "auto"
	// EvaluatorWasm requires the WebAssembly evaluator: Load fails if it
	// cannot take the policy set.
	EvaluatorWasm = "wasm"
	// EvaluatorInterpreter is OPA's interpreter (topdown) only.
	EvaluatorInterpreter = "interpreter"
)

// Engine evaluates the prepared decision query. Safe for concurrent use.
type Engine struct {
	query   rego.PreparedEvalQuery
	modules []string // file names, for messages

	// wasm, when set, evaluates first; query takes what it cannot.
	wasm       *wasmQuery
	why        string // why there is no wasm, in auto mode
	onFallback func(error)
}

// Rule is a deny or review entry.
type Rule struct {
	Policy string `json:"policy"`
	Kind   string `json:"kind,omitempty"`
	Reason string `json:"reason"`
}

// Redaction replaces every occurrence of Text in the input.
type Redaction struct {
	Policy      string `json:"policy"`
	Text        string `json:"text"`
	Replacement string `json:"replacement"`
}

// Cap bounds request parameters.
type Cap struct {
	MaxTokens   int64    `json:"max_tokens,omitempty"`
	Temperature *float64 `json:"temperature,omitempty"`
}

// Decision is one evaluation's result.
type Decision struct {
	Allow  bool
	Deny   []Rule
	Redact []Redaction
	Review []Rule
	Tags   []string
	Route  string
	Cap    *Cap
}

// Load reads, compiles and tests the modules of o.Dir and prepares the
// query. Errors name the file and line.
func Load(ctx context.Context, o Options) (*Engine, error) {
	comp, parsed, store, err := compile(o.Dir, o.Data)
	if err != nil {
		return nil, err
	}
	if !o.SkipTests {
		// The tests run without the deployment's data: they state what
		// they assume (with data.switchyard.config as ...), and a setting
		// of this config must not fail them.
		if err := runTests(ctx, comp, parsed, inmem.New()); err != nil {
			return nil, err
		}
	}
	// The query is compiled without the tests: they are not part of the
	// decision, and the aggregator's walk of data.switchyard would visit
	// their packages on every evaluation.
	prod := map[string]*ast.Module{}
	for n, m := range parsed {
		if !strings.HasSuffix(n, "_test.rego") {
			prod[n] = m
		}
	}
	q, err := prepare(ctx, prod, store, o.plain)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(parsed))
	for n := range parsed {
		names = append(names, n)
	}
	sort.Strings(names)
	e := &Engine{query: q, modules: names, onFallback: o.OnFallback}
	// The decision's shape, checked once on an empty request.
	empty := &Input{Phase: "request"}
	want, err := e.Eval(ctx, empty)
	if err != nil {
		return nil, fmt.Errorf("policy: %s on an empty request: %w", Query, err)
	}
	evaluator := o.Evaluator
	if o.plain {
		evaluator = EvaluatorInterpreter
	}
	switch evaluator {
	case "", EvaluatorAuto, EvaluatorWasm:
		if err := e.prepareWasm(ctx, prod, store, o.Data, empty, want); err != nil {
			if evaluator == EvaluatorWasm {
				return nil, fmt.Errorf("policy: the WebAssembly evaluator: %w", err)
			}
			e.why = err.Error()
		}
	case EvaluatorInterpreter:
		e.why = "the interpreter was asked for"
	default:
		return nil, fmt.Errorf("policy: evaluator %q is not auto, wasm or interpreter", o.Evaluator)
	}
	return e, nil
}

// prepareWasm compiles the decision to WebAssembly and checks that it
// decides the empty request as the interpreter did (want).
func (e *Engine) prepareWasm(ctx context.Context, modules map[string]*ast.Module, store storage.Store, data map[string]any, empty *Input, want *Decision) error {
	w, err := newWasmQuery(ctx, modules, store, data)
	if err != nil {
		return err
	}
	v, got, err := w.eval(empty)
	if err == nil && got == nil {
		got, err = decisionOf(v)
	}
	if err != nil {
		w.close()
		return fmt.Errorf("on an empty request: %w", err)
	}
	if !reflect.DeepEqual(got, want) {
		w.close()
		return fmt.Errorf("on an empty request it decides %+v, the interpreter %+v", got, want)
	}
	e.wasm = w
	// Engines are not always closed (tests, a failed build): the
	// instances and compiled code then go with the engine.
	runtime.AddCleanup(e, func(w *wasmQuery) { w.close() }, w)
	return nil
}

// Evaluator says which evaluator runs the decision (EvaluatorWasm or
// EvaluatorInterpreter) and, for the interpreter, why.
func (e *Engine) Evaluator() (name, why string) {
	if e.wasm != nil {
		return EvaluatorWasm, ""
	}
	return EvaluatorInterpreter, e.why
}

// Close releases the WebAssembly evaluator's instances and code. Eval
// after Close uses the interpreter.
func (e *Engine) Close() error {
	if w := e.wasm; w != nil {
		w.close()
	}
	return nil
}

// partialNamespace holds the modules that partial evaluation writes. It is
// outside data.switchyard, which policies walk.
const partialNamespace = "switchyard_partial"

// prepare compiles modules and prepares the query, with partial
// evaluation unless plain: what does not depend on the input (the settings
// in data, the packages under data.switchyard.policies that the aggregator
// walks) is evaluated once, here, instead of at every request. Shallow
// inlining keeps each rule a rule: the residual refers to the policies'
// rules instead of copying their bodies into the aggregator, so a rule
// still runs once per evaluation. Partial evaluation is OPA's own, sound
// for any policy; TestPartialEvalDecisions checks that the default
// library decides as the plain query does. Should partial evaluation fail
// on some policy set, the plain query is prepared instead.
func prepare(ctx context.Context, modules map[string]*ast.Module, store storage.Store, plain bool) (rego.PreparedEvalQuery, error) {
	compiler := func() (*ast.Compiler, error) {
		c := ast.NewCompiler()
		if c.Compile(modules); c.Failed() {
			return nil, fmt.Errorf("policy: %w", c.Errors)
		}
		return c, nil
	}
	if !plain {
		// A compiler of its own: partial evaluation adds its modules to it.
		comp, err := compiler()
		if err != nil {
			return rego.PreparedEvalQuery{}, err
		}
		q, err := rego.New(rego.Query(Query), rego.Compiler(comp), rego.Store(store),
			rego.Unknowns([]string{"input"}), rego.ShallowInlining(true), rego.PartialNamespace(partialNamespace),
		).PrepareForEval(ctx, rego.WithPartialEval())
		if err == nil {
			return q, nil
		}
	}
	comp, err := compiler()
	if err != nil {
		return rego.PreparedEvalQuery{}, err
	}
	q, err := rego.New(rego.Query(Query), rego.Compiler(comp), rego.Store(store)).PrepareForEval(ctx)
	if err != nil {
		return rego.PreparedEvalQuery{}, fmt.Errorf("policy: preparing %s: %w", Query, err)
	}
	return q, nil
}

// compile reads and compiles the modules of dir, with data under
// data.switchyard.config.
func compile(dir string, data map[string]any) (*ast.Compiler, map[string]*ast.Module, storage.Store, error) {
	var names []string
	modules := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !strings.HasSuffix(path, ".rego") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		modules[path] = string(b)
		names = append(names, path)
		return nil
	})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("policy: reading %s: %w", dir, err)
	}
	if len(modules) == 0 {
		return nil, nil, nil, fmt.Errorf("policy: %s holds no .rego module", dir)
	}
	sort.Strings(names)
	parsed := map[string]*ast.Module{}
	for _, n := range names {
		m, err := ast.ParseModuleWithOpts(n, modules[n], ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			return nil, nil, nil, fmt.Errorf("policy: %w", err)
		}
		parsed[n] = m
	}
	comp := ast.NewCompiler()
	comp.Compile(parsed)
	if comp.Failed() {
		return nil, nil, nil, fmt.Errorf("policy: %w", comp.Errors)
	}
	doc := map[string]any{}
	if data != nil {
		doc = map[string]any{"switchyard": map[string]any{"config": data}}
	}
	return comp, parsed, inmem.NewFromObject(doc), nil
}

// TestResult is one Rego test's outcome.
type TestResult struct {
	Name, File string
	Line       int
	Fail       bool
	Err        error
	Duration   time.Duration
}

// runTests runs the modules' Rego tests; any failure is an error naming
// the tests and their files.
func runTests(ctx context.Context, comp *ast.Compiler, modules map[string]*ast.Module, store storage.Store) error {
	results, err := testModules(ctx, comp, modules, store)
	if err != nil {
		return err
	}
	var failed []string
	for _, r := range results {
		switch {
		case r.Err != nil:
			failed = append(failed, fmt.Sprintf("%s:%d: %s: %v", r.File, r.Line, r.Name, r.Err))
		case r.Fail:
			failed = append(failed, fmt.Sprintf("%s:%d: %s failed", r.File, r.Line, r.Name))
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("policy: %d of %d Rego tests failed:\n  %s", len(failed), len(results), strings.Join(failed, "\n  "))
	}
	return nil
}

func testModules(ctx context.Context, comp *ast.Compiler, modules map[string]*ast.Module, store storage.Store) ([]TestResult, error) {
	txn, err := store.NewTransaction(ctx)
	if err != nil {
		return nil, fmt.Errorf("policy: running the Rego tests: %w", err)
	}
	defer store.Abort(ctx, txn)
	ch, err := tester.NewRunner().SetCompiler(comp).SetStore(store).SetModules(modules).RunTests(ctx, txn)
	if err != nil {
		return nil, fmt.Errorf("policy: running the Rego tests: %w", err)
	}
	var out []TestResult
	for r := range ch {
		tr := TestResult{Name: r.Package + "." + r.Name, Fail: r.Fail, Err: r.Error, Duration: r.Duration}
		if r.Location != nil {
			tr.File, tr.Line = r.Location.File, r.Location.Row
		}
		out = append(out, tr)
	}
	return out, nil
}

// Test compiles the modules of dir and runs their Rego tests, as Load
// does, and returns every result (for `switchyard policy test`).
func Test(ctx context.Context, dir string, data map[string]any) ([]TestResult, error) {
	comp, parsed, store, err := compile(dir, data)
	if err != nil {
		return nil, err
	}
	return testModules(ctx, comp, parsed, store)
}

// Modules are the files loaded.
func (e *Engine) Modules() []string { return e.modules }

// Options of every evaluation that need not be built per call: no metrics,
// and the decision handed back as OPA's value (decodeValue reads it
// without converting it to Go maps first).
var (
	noMetrics = rego.EvalMetrics(metrics.NoOp())
	rawResult = rego.EvalGenerateJSON(func(t *ast.Term, _ *rego.EvalContext) (any, error) { return t, nil })
	// noCancel is never cancelled (see Eval); it spares OPA a goroutine
	// watching the context.
	noCancel = rego.EvalExternalCancel(topdown.NewCancel())
)

// Eval evaluates the decision for in. ctx is checked before the
// evaluation but not watched during it: OPA would watch it from a goroutine
// of its own that may outlive the call, and the gateway's exchange contexts
// are pooled. An evaluation is short (its input is bounded by the body
// limit).
//
// With the WebAssembly evaluator, an evaluation it cannot finish (an
// abort, a built-in result that cannot cross, an input that is not valid
// UTF-8) is evaluated again by the interpreter, which then decides.
func (e *Engine) Eval(ctx context.Context, in *Input) (*Decision, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if w := e.wasm; w != nil {
		v, d, err := w.eval(in)
		if err == nil {
			if d != nil {
				return d, nil
			}
			return decisionOf(v)
		}
		if e.onFallback != nil {
			e.onFallback(err)
		}
	}
	return e.evalInterpreter(in)
}

func (e *Engine) evalInterpreter(in *Input) (*Decision, error) {
	rs, err := e.query.Eval(context.Background(), rego.EvalParsedInput(in.value()), noCancel, noMetrics, rawResult)
	if err != nil {
		return nil, fmt.Errorf("policy: evaluating: %w", err)
	}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return nil, errors.New("policy: data.switchyard.decision is undefined")
	}
	t, ok := rs[0].Expressions[0].Value.(*ast.Term)
	if !ok {
		return nil, fmt.Errorf("policy: the decision is %T, not an OPA value", rs[0].Expressions[0].Value)
	}
	return decisionOf(t.Value)
}

// decisionOf reads the decision from its value (nil: undefined).
func decisionOf(val ast.Value) (*Decision, error) {
	if val == nil {
		return nil, errors.New("policy: data.switchyard.decision is undefined")
	}
	if d, ok := decodeValue(val); ok {
		return d, nil
	}
	// Not of the usual shape: decode says what is wrong, as it always has.
	v, err := ast.JSON(val)
	if err != nil {
		return nil, fmt.Errorf("policy: the decision: %w", err)
	}
	return decode(v)
}

// decodeValue is decode for a decision of the documented shape, read from
// OPA's value. It reports false for anything else (a wrong type, a missing
// field, an unknown key), which decode then reports; for a decision it
// accepts, it returns what decode returns.
func decodeValue(v ast.Value) (*Decision, bool) {
	obj, ok := v.(ast.Object)
	if !ok {
		return nil, false
	}
	d := &Decision{}
	seenAllow := false
	fine := true
	obj.Foreach(func(k, val *ast.Term) {
		key, isStr := k.Value.(ast.String)
		if !fine || !isStr {
			fine = false
			return
		}
		switch key {
		case "allow":
			b, ok := val.Value.(ast.Boolean)
			d.Allow, seenAllow, fine = bool(b), ok, ok
		case "deny", "review":
			rules, ok := rulesOfValue(string(key), val.Value)
			if key == "deny" {
				d.Deny = rules
			} else {
				d.Review = rules
			}
			fine = ok
		case "redact":
			fine = eachOf(val.Value, func(t *ast.Term) bool {
				o, ok := t.Value.(ast.Object)
				if !ok {
					return false
				}
				r := Redaction{Policy: strOf(o, "policy"), Text: strOf(o, "text"), Replacement: strOf(o, "replacement")}
				d.Redact = append(d.Redact, r)
				return r.Text != ""
			})
		case "tags":
			fine = eachOf(val.Value, func(t *ast.Term) bool {
				s, ok := t.Value.(ast.String)
				d.Tags = append(d.Tags, string(s))
				return ok
			})
			sort.Strings(d.Tags)
		case "route":
			s, ok := val.Value.(ast.String)
			d.Route, fine = string(s), ok
		case "cap":
			o, ok := val.Value.(ast.Object)
			if !ok {
				fine = false
				return
			}
			c := &Cap{}
			if n, ok := numberOf(o, "max_tokens"); ok {
				c.MaxTokens = int64(n)
			}
			if t, ok := numberOf(o, "temperature"); ok {
				c.Temperature = &t
			}
			d.Cap = c
		default:
			fine = false
		}
	})
	if !fine || !seenAllow || d.Allow != (len(d.Deny) == 0) {
		return nil, false
	}
	return d, true
}

// eachOf calls f with each element of a set or an array (null is empty),
// in the order of the JSON conversion (sets sorted), while f reports true.
func eachOf(v ast.Value, f func(*ast.Term) bool) bool {
	switch t := v.(type) {
	case ast.Null:
		return true
	case ast.Set:
		for _, e := range t.Slice() {
			if !f(e) {
				return false
			}
		}
		return true
	case *ast.Array:
		for i := range t.Len() {
			if !f(t.Elem(i)) {
				return false
			}
		}
		return true
	}
	return false
}

var (
	fieldPolicy, fieldKind, fieldReason = ast.StringTerm("policy"), ast.StringTerm("kind"), ast.StringTerm("reason")
	fieldText, fieldReplacement         = ast.StringTerm("text"), ast.StringTerm("replacement")
	fieldMaxTokens, fieldTemperature    = ast.StringTerm("max_tokens"), ast.StringTerm("temperature")
	fields                              = map[string]*ast.Term{"policy": fieldPolicy, "kind": fieldKind, "reason": fieldReason,
		"text": fieldText, "replacement": fieldReplacement, "max_tokens": fieldMaxTokens, "temperature": fieldTemperature}
)

// strOf is o[k] when it is a string, else "" (as decode's type assertions).
func strOf(o ast.Object, k string) string {
	if t := o.Get(fields[k]); t != nil {
		if s, ok := t.Value.(ast.String); ok {
			return string(s)
		}
	}
	return ""
}

func numberOf(o ast.Object, k string) (float64, bool) {
	if t := o.Get(fields[k]); t != nil {
		if n, ok := t.Value.(ast.Number); ok {
			return number(json.Number(n))
		}
	}
	return 0, false
}

func rulesOfValue(k string, v ast.Value) ([]Rule, bool) {
	out := []Rule{} // as rulesOf: empty, not nil, when the key is there
	ok := eachOf(v, func(t *ast.Term) bool {
		o, ok := t.Value.(ast.Object)
		if !ok {
			return false
		}
		r := Rule{Policy: strOf(o, "policy"), Kind: strOf(o, "kind"), Reason: strOf(o, "reason")}
		out = append(out, r)
		return r.Policy != "" && r.Reason != "" && (k != "deny" || r.Kind == "access" || r.Kind == "content")
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Policy < out[j].Policy })
	return out, ok
}

// decode checks the decision's shape.
func decode(v any) (*Decision, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("the decision is %T, not an object", v)
	}
	d := &Decision{}
	allow, ok := m["allow"].(bool)
	if !ok {
		return nil, errors.New(`the decision has no boolean "allow"`)
	}
	d.Allow = allow
	for k, val := range m {
		switch k {
		case "allow":
		case "deny", "review":
			rules, err := rulesOf(k, val)
			if err != nil {
				return nil, err
			}
			if k == "deny" {
				d.Deny = rules
			} else {
				d.Review = rules
			}
		case "redact":
			list, err := listOf(k, val)
			if err != nil {
				return nil, err
			}
			for i, e := range list {
				o, ok := e.(map[string]any)
				text, _ := o["text"].(string)
				rep, _ := o["replacement"].(string)
				pol, _ := o["policy"].(string)
				if !ok || text == "" {
					return nil, fmt.Errorf("redact[%d]: want {policy, text, replacement} with a non-empty text", i)
				}
				d.Redact = append(d.Redact, Redaction{Policy: pol, Text: text, Replacement: rep})
			}
		case "tags":
			list, err := listOf(k, val)
			if err != nil {
				return nil, err
			}
			for i, e := range list {
				s, ok := e.(string)
				if !ok {
					return nil, fmt.Errorf("tags[%d] is not a string", i)
				}
				d.Tags = append(d.Tags, s)
			}
			sort.Strings(d.Tags)
		case "route":
			s, ok := val.(string)
			if !ok {
				return nil, errors.New(`"route" is not a string`)
			}
			d.Route = s
		case "cap":
			o, ok := val.(map[string]any)
			if !ok {
				return nil, errors.New(`"cap" is not an object`)
			}
			c := &Cap{}
			if n, ok := number(o["max_tokens"]); ok {
				c.MaxTokens = int64(n)
			}
			if t, ok := number(o["temperature"]); ok {
				c.Temperature = &t
			}
			d.Cap = c
		default:
			return nil, fmt.Errorf("the decision has an unknown key %q", k)
		}
	}
	if d.Allow != (len(d.Deny) == 0) {
		return nil, errors.New(`"allow" must be true exactly when "deny" is empty`)
	}
	return d, nil
}

func listOf(k string, v any) ([]any, error) {
	switch t := v.(type) {
	case []any:
		return t, nil
	case nil:
		return nil, nil
	}
	return nil, fmt.Errorf("%q is %T, not a list", k, v)
}

func rulesOf(k string, v any) ([]Rule, error) {
	list, err := listOf(k, v)
	if err != nil {
		return nil, err
	}
	out := make([]Rule, 0, len(list))
	for i, e := range list {
		o, ok := e.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s[%d] is not an object", k, i)
		}
		r := Rule{}
		r.Policy, _ = o["policy"].(string)
		r.Kind, _ = o["kind"].(string)
		r.Reason, _ = o["reason"].(string)
		if r.Policy == "" || r.Reason == "" {
			return nil, fmt.Errorf("%s[%d]: want a policy and a reason", k, i)
		}
		if k == "deny" && r.Kind != "access" && r.Kind != "content" {
			return nil, fmt.Errorf("deny[%d]: kind %q is not access or content", i, r.Kind)
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Policy < out[j].Policy })
	return out, nil
}

func number(v any) (float64, bool) {
	switch t := v.(type) {
	case float64:
		return t, true
	case int:
		return float64(t), true
	case int64:
		return float64(t), true
	case interface{ Float64() (float64, error) }:
		f, err := t.Float64()
		return f, err == nil
	}
	return 0, false
}
