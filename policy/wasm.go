package policy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/topdown"
	"github.com/open-policy-agent/opa/v1/topdown/builtins"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// The WebAssembly evaluator. OPA compiles the decision, partially
// evaluated as for the interpreter (see prepare), to a WebAssembly module
// with its own compiler, in process; wazero (pure Go, no cgo) runs it.
// This side implements the host half of OPA's documented Wasm ABI
// (docs/docs/wasm.md in OPA's repository): the module's memory, opa_abort,
// opa_println, and the opa_builtinN dispatchers, which call the Go
// implementation of each built-in the module does not carry itself (our
// switchyard.* detectors, sprintf, regex.replace, ...), the very functions
// the interpreter calls. One evaluation is one opa_eval call: the input
// goes in as JSON, the decision comes out as value text (valuetext.go).
//
// An instance of the module evaluates one input at a time; wasmQuery
// keeps a few idle ones. An evaluation that goes wrong on this side (an
// abort, a built-in result that cannot cross, an input that is not valid
// UTF-8) is handed to the interpreter instead: see Engine.Eval.

// wasmCache keeps the machine code of the modules compiled, across
// generations: a reload of unchanged policies does not compile them again.
var wasmCache = wazero.NewCompilationCache()

// wasmMemoryLimit bounds an instance's memory (64 KiB pages: 256 MiB). An
// evaluation that needs more aborts, and the interpreter takes it.
const wasmMemoryLimit = 4096

// errWasmUnsupported marks a policy set the WebAssembly evaluator does not
// take; Load then evaluates with the interpreter.
var errWasmUnsupported = errors.New("not supported by the WebAssembly evaluator")

type wasmQuery struct {
	rt       wazero.Runtime
	mod      wazero.CompiledModule
	builtins []wasmBuiltin // by the module's identifiers
	entry    int32
	// layout: the module's values can be read from memory directly
	// (readValue), checked on the first instance.
	layout bool
	// verified and differ: the kinds of value checked on first use
	// (kindInternedString, ...) that read as opa_value_dump writes them,
	// and those that do not.
	verified, differ atomic.Uint32
	data             []byte // the data document, as JSON
	// consts: the arrays of constant strings read (see constKey).
	constMu sync.RWMutex
	consts  map[string]ast.Value

	mu     sync.Mutex
	idle   []*wasmVM
	closed bool
}

type wasmBuiltin struct {
	name string
	fn   topdown.BuiltinFunc
}

// maxIdle is how many idle instances a query keeps.
func maxIdle() int { return 2 * runtime.GOMAXPROCS(0) }

// newWasmQuery compiles the decision to WebAssembly: partial evaluation
// against the settings exactly as the interpreter's query (same options),
// then OPA's planner and Wasm compiler.
func newWasmQuery(ctx context.Context, modules map[string]*ast.Module, store storage.Store, data map[string]any) (*wasmQuery, error) {
	comp := ast.NewCompiler()
	if comp.Compile(modules); comp.Failed() {
		return nil, fmt.Errorf("policy: %w", comp.Errors)
	}
	// PartialResult adds the residual to comp, as the rule
	// data.<partialNamespace>.__result__, which the compiled query binds.
	_, err := rego.New(rego.Query(Query), rego.Compiler(comp), rego.Store(store),
		rego.Unknowns([]string{"input"}), rego.ShallowInlining(true), rego.PartialNamespace(partialNamespace),
	).PartialResult(ctx)
	if err != nil {
		return nil, fmt.Errorf("partial evaluation: %w", err)
	}
	res, err := rego.New(rego.Query("result = data."+partialNamespace+".__result__"), rego.Compiler(comp), rego.Store(store)).Compile(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: compiling: %w", errWasmUnsupported, err)
	}
	doc := map[string]any{}
	if data != nil {
		doc = map[string]any{"switchyard": map[string]any{"config": data}}
	}
	dataJSON, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("%w: the settings as JSON: %w", errWasmUnsupported, err)
	}
	return newWasmQueryFrom(ctx, res.Bytes, dataJSON)
}

// newWasmQueryFrom loads a compiled policy module whose entry point 0 is
// the decision.
func newWasmQueryFrom(ctx context.Context, bin, dataJSON []byte) (*wasmQuery, error) {
	bin, err := ownMemory(bin)
	if err != nil {
		return nil, err
	}
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().
		WithCompilationCache(wasmCache).WithMemoryLimitPages(wasmMemoryLimit))
	q := &wasmQuery{rt: rt, data: dataJSON}
	if err := q.init(ctx, bin); err != nil {
		rt.Close(ctx)
		return nil, err
	}
	return q, nil
}

func (q *wasmQuery) init(ctx context.Context, bin []byte) error {
	host := q.rt.NewHostModuleBuilder("env")
	i32 := api.ValueTypeI32
	host.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(hostAbort), []api.ValueType{i32}, nil).Export("opa_abort")
	host.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(context.Context, api.Module, []uint64) {}), []api.ValueType{i32}, nil).Export("opa_println")
	for n := range 5 {
		params := make([]api.ValueType, 2+n)
		for i := range params {
			params[i] = i32
		}
		host.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, m api.Module, stack []uint64) {
			vmOf(ctx).builtin(stack, n)
		}), params, []api.ValueType{i32}).Export(fmt.Sprintf("opa_builtin%d", n))
	}
	if _, err := host.Instantiate(ctx); err != nil {
		return fmt.Errorf("wasm: the host module: %w", err)
	}
	mod, err := q.rt.CompileModule(ctx, bin)
	if err != nil {
		return fmt.Errorf("wasm: compiling the module: %w", err)
	}
	q.mod = mod

	// The built-ins and entry points the module names, read from a first
	// instance (they are the same in every one).
	vm, err := q.instance(ctx)
	if err != nil {
		return err
	}
	defer vm.close()
	var names map[string]int32
	if err := vm.readJSON("builtins", &names); err != nil {
		return err
	}
	for name, id := range names {
		b, err := hostBuiltin(name)
		if err != nil {
			return err
		}
		if id < 0 || id > 1<<16 {
			return fmt.Errorf("wasm: built-in %s has the identifier %d", name, id)
		}
		for int(id) >= len(q.builtins) {
			q.builtins = append(q.builtins, wasmBuiltin{})
		}
		q.builtins[id] = b
	}
	q.layout = vm.checkLayout()
	var entries map[string]int32
	if err := vm.readJSON("entrypoints", &entries); err != nil {
		return err
	}
	if len(entries) != 1 {
		return fmt.Errorf("wasm: %d entry points, want 1", len(entries))
	}
	for _, id := range entries {
		q.entry = id
	}
	return nil
}

// hostBuiltin is the Go implementation of a built-in the module calls
// out for. Only pure functions cross: a built-in that is non-deterministic
// (time, randomness, HTTP), a relation or one OPA's interpreter implements
// without a function of its own keeps the policy set on the interpreter.
func hostBuiltin(name string) (wasmBuiltin, error) {
	decl, ok := ast.BuiltinMap[name]
	fn := topdown.GetBuiltin(name)
	switch {
	case !ok || fn == nil:
		return wasmBuiltin{}, fmt.Errorf("%w: the built-in %s has no Go implementation here", errWasmUnsupported, name)
	case decl.Nondeterministic:
		return wasmBuiltin{}, fmt.Errorf("%w: the built-in %s is not deterministic", errWasmUnsupported, name)
	case decl.Relation:
		return wasmBuiltin{}, fmt.Errorf("%w: the built-in %s is a relation", errWasmUnsupported, name)
	}
	return wasmBuiltin{name: name, fn: fn}, nil
}

// close releases the query's instances and compiled code. Instances in use
// are closed when they come back.
func (q *wasmQuery) close() {
	q.mu.Lock()
	idle := q.idle
	q.idle, q.closed = nil, true
	q.mu.Unlock()
	for _, vm := range idle {
		vm.close()
	}
	q.rt.Close(context.Background())
}

func (q *wasmQuery) get(ctx context.Context) (*wasmVM, error) {
	q.mu.Lock()
	if n := len(q.idle); n > 0 {
		vm := q.idle[n-1]
		q.idle = q.idle[:n-1]
		q.mu.Unlock()
		return vm, nil
	}
	closed := q.closed
	q.mu.Unlock()
	if closed {
		return nil, errors.New("wasm: the query is closed")
	}
	return q.instance(ctx)
}

func (q *wasmQuery) put(vm *wasmVM) {
	q.mu.Lock()
	if !q.closed && len(q.idle) < maxIdle() {
		q.idle = append(q.idle, vm)
		vm = nil
	}
	q.mu.Unlock()
	if vm != nil {
		vm.close()
	}
}

// wasmVM is one instance of the module, with the data document loaded.
type wasmVM struct {
	q   *wasmQuery
	m   api.Module
	mem api.Memory
	ctx context.Context // carries the instance to the host functions

	eval, malloc, valueDump, valueParse, jsonDump, jsonParse      api.Function
	heapPtrSet, ctxNew, ctxSetInput, ctxSetData, ctxSetEntrypoint api.Function
	evalCtx, ctxGetResult                                         api.Function

	dataAddr, heapPtr uint32
	stack             []uint64 // opa_eval's
	hstack            []uint64 // the host functions' calls into the module
	buf, out, key     []byte
	args              [4]*ast.Term
	bctx              topdown.BuiltinContext
	// fault is what went wrong on the host side during the current
	// evaluation (a built-in's result that cannot cross, a Halt).
	fault error
	// known are the strings of this evaluation whose text this side wrote
	// (the input's texts, the long strings built-ins returned), by where
	// their bytes are: an argument that is one of them is not read again.
	known []knownString
	// noQuick: the decision is always read as a value (tests).
	noQuick bool
}

// knownString is a string's bytes in memory and the Go string they hold.
type knownString struct {
	at, n uint32
	s     string
}

// minKnown is the shortest text a built-in returns that is written as a
// string value and remembered, rather than as value text to parse.
const minKnown = 64

// knownText is the Go string whose bytes are the n at p, if this side
// wrote them in this evaluation.
func (vm *wasmVM) knownText(p, n uint32) (string, bool) {
	for _, k := range vm.known {
		if k.at == p && k.n == n {
			return k.s, true
		}
	}
	return "", false
}

type vmKey struct{}

func vmOf(ctx context.Context) *wasmVM { return ctx.Value(vmKey{}).(*wasmVM) }

func (q *wasmQuery) instance(ctx context.Context) (*wasmVM, error) {
	m, err := q.rt.InstantiateModule(ctx, q.mod, wazero.NewModuleConfig().WithName("").WithStartFunctions())
	if err != nil {
		return nil, fmt.Errorf("wasm: instantiating: %w", err)
	}
	vm := &wasmVM{q: q, m: m, mem: m.Memory(), stack: make([]uint64, 8), hstack: make([]uint64, 2)}
	vm.ctx = context.WithValue(context.Background(), vmKey{}, vm)
	for _, f := range []struct {
		name string
		fn   *api.Function
	}{{"opa_malloc", &vm.malloc}, {"opa_value_dump", &vm.valueDump},
		{"opa_value_parse", &vm.valueParse}, {"opa_json_dump", &vm.jsonDump}, {"opa_json_parse", &vm.jsonParse},
		{"opa_heap_ptr_set", &vm.heapPtrSet}, {"opa_eval_ctx_new", &vm.ctxNew}, {"opa_eval_ctx_set_input", &vm.ctxSetInput},
		{"opa_eval_ctx_set_data", &vm.ctxSetData}, {"opa_eval_ctx_set_entrypoint", &vm.ctxSetEntrypoint},
		{"eval", &vm.evalCtx}, {"opa_eval_ctx_get_result", &vm.ctxGetResult}} {
		if *f.fn = m.ExportedFunction(f.name); *f.fn == nil {
			m.Close(ctx)
			return nil, fmt.Errorf("wasm: the module exports no %s", f.name)
		}
	}
	if vm.mem == nil {
		m.Close(ctx)
		return nil, errors.New("wasm: the module has no memory")
	}
	// The data document, parsed once; evaluations start their heap after
	// it (opa_eval resets the heap pointer it is given).
	addr, err := vm.write(q.data)
	if err == nil {
		vm.dataAddr, err = vm.call1(vm.jsonParse, uint64(addr), uint64(len(q.data)))
	}
	if err == nil && vm.dataAddr == 0 {
		err = errors.New("wasm: the module did not parse the settings")
	}
	if err == nil {
		err = vm.callNamed("opa_heap_blocks_stash")
	}
	if err == nil {
		var p uint32
		p, err = vm.call1(m.ExportedFunction("opa_heap_ptr_get"))
		vm.heapPtr = p
	}
	if err != nil {
		m.Close(ctx)
		return nil, err
	}
	return vm, nil
}

func (vm *wasmVM) close() { vm.m.Close(context.Background()) }

// call1 calls f with args and returns its i32 result.
func (vm *wasmVM) call1(f api.Function, args ...uint64) (uint32, error) {
	if f == nil {
		return 0, errors.New("wasm: a function the ABI needs is missing")
	}
	copy(vm.stack, args)
	if err := f.CallWithStack(vm.ctx, vm.stack); err != nil {
		return 0, err
	}
	return uint32(vm.stack[0]), nil
}

func (vm *wasmVM) callNamed(name string) error {
	f := vm.m.ExportedFunction(name)
	if f == nil {
		return fmt.Errorf("wasm: the module exports no %s", name)
	}
	return f.CallWithStack(vm.ctx, vm.stack)
}

// write copies b into memory the module allocates.
func (vm *wasmVM) write(b []byte) (uint32, error) {
	addr, err := vm.call1(vm.malloc, uint64(len(b)))
	if err != nil {
		return 0, err
	}
	if !vm.mem.Write(addr, b) {
		return 0, errors.New("wasm: writing past the memory")
	}
	return addr, nil
}

// cstring is the NUL-terminated string at addr, as a view of the memory
// (valid until the next call into the module).
func (vm *wasmVM) cstring(addr uint32) ([]byte, error) {
	size := vm.mem.Size()
	if addr >= size {
		return nil, errors.New("wasm: a string address past the memory")
	}
	b, _ := vm.mem.Read(addr, size-addr)
	n := bytes.IndexByte(b, 0)
	if n < 0 {
		return nil, errors.New("wasm: an unterminated string")
	}
	return b[:n], nil
}

// readJSON calls the export name (builtins, entrypoints) and decodes the
// value it returns.
func (vm *wasmVM) readJSON(name string, v any) error {
	f := vm.m.ExportedFunction(name)
	if f == nil {
		return fmt.Errorf("wasm: the module exports no %s", name)
	}
	addr, err := vm.call1(f)
	if err == nil {
		addr, err = vm.call1(vm.jsonDump, uint64(addr))
	}
	if err != nil {
		return fmt.Errorf("wasm: %s: %w", name, err)
	}
	s, err := vm.cstring(addr)
	if err != nil {
		return err
	}
	return json.Unmarshal(s, v)
}

// eval evaluates the decision for in. It returns the decision's value
// (nil when undefined), or an error when the evaluation must be left to
// the interpreter.
//
// The decision comes back as a *Decision when quickDecision could read it
// (the usual one: no findings), else as its value for decisionOf.
func (q *wasmQuery) eval(in *Input) (ast.Value, *Decision, error) {
	vm, err := q.get(context.Background())
	if err != nil {
		return nil, nil, err
	}
	v, d, err := vm.evalInput(in)
	if err != nil {
		// An instance that failed half way is not used again.
		vm.close()
		return nil, nil, err
	}
	q.put(vm)
	return v, d, nil
}

// evalInput evaluates the decision for in: the input parsed in the
// module (its texts, when the layout is known, written as they are and
// pointed at, see setTexts), then the ABI's eval context, and the result
// read from memory.
func (vm *wasmVM) evalInput(in *Input) (ast.Value, *Decision, error) {
	texts := vm.q.layout
	var ok bool
	vm.buf, ok = in.appendJSON(vm.buf[:0], texts)
	if !ok {
		return nil, nil, errors.New("wasm: the input is not valid UTF-8")
	}
	jsonLen := len(vm.buf)
	if texts {
		// The texts follow the JSON; a content that is the prompt (one
		// message) is written once.
		vm.buf = append(vm.buf, in.Prompt...)
		for _, m := range in.Messages {
			if m.Content != in.Prompt {
				vm.buf = append(vm.buf, m.Content...)
			}
		}
		vm.buf = append(vm.buf, in.Output...)
	}
	if len(vm.buf) > 1<<30 {
		return nil, nil, errors.New("wasm: the input is too large")
	}
	inAddr, n := vm.heapPtr, uint32(len(vm.buf))
	if need := uint64(inAddr) + uint64(n); need > uint64(vm.mem.Size()) {
		pages := (need - uint64(vm.mem.Size()) + 65535) / 65536
		if _, ok := vm.mem.Grow(uint32(pages)); !ok {
			return nil, nil, errors.New("wasm: the input does not fit in the memory")
		}
	}
	vm.mem.Write(inAddr, vm.buf)
	vm.fault = nil
	clear(vm.known)
	vm.known = vm.known[:0]
	vm.bctx = topdown.BuiltinContext{Context: context.Background(), Cache: builtins.Cache{}}
	// What opa_eval does (heap reset, parse, eval), with the input's
	// texts set between the parse and the evaluation and the result
	// left in memory.
	if _, err := vm.call1(vm.heapPtrSet, uint64(inAddr+n)); err != nil {
		return nil, nil, fmt.Errorf("wasm: evaluating: %w", err)
	}
	input, err := vm.call1(vm.valueParse, uint64(inAddr), uint64(jsonLen))
	if err != nil {
		return nil, nil, fmt.Errorf("wasm: parsing the input: %w", err)
	}
	if input == 0 {
		return nil, nil, errors.New("wasm: the module did not parse the input")
	}
	if texts {
		if err := vm.setTexts(in, input, inAddr+uint32(jsonLen)); err != nil {
			return nil, nil, err
		}
	}
	ctx, err := vm.call1(vm.ctxNew)
	if err == nil {
		_, err = vm.call1(vm.ctxSetInput, uint64(ctx), uint64(input))
	}
	if err == nil {
		_, err = vm.call1(vm.ctxSetData, uint64(ctx), uint64(vm.dataAddr))
	}
	if err == nil {
		_, err = vm.call1(vm.ctxSetEntrypoint, uint64(ctx), uint64(vm.q.entry))
	}
	var rc, result uint32
	if err == nil {
		rc, err = vm.call1(vm.evalCtx, uint64(ctx))
	}
	if err == nil && rc != 0 {
		err = fmt.Errorf("eval returned %d", rc)
	}
	if err == nil {
		result, err = vm.call1(vm.ctxGetResult, uint64(ctx))
	}
	if err != nil {
		return nil, nil, fmt.Errorf("wasm: evaluating: %w", err)
	}
	if vm.fault != nil {
		return nil, nil, vm.fault
	}
	if result == 0 {
		return nil, nil, errors.New("wasm: no result set")
	}
	if !vm.noQuick {
		if d, ok := vm.quickDecision(result); ok {
			return nil, d, nil
		}
	}
	rs, err := vm.read(result)
	if err != nil {
		return nil, nil, fmt.Errorf("wasm: the result set: %w", err)
	}
	// The result set: {{"result": decision}}, empty when undefined.
	set, ok := rs.(ast.Set)
	if !ok {
		return nil, nil, fmt.Errorf("wasm: the result set is %s", ast.ValueName(rs))
	}
	results := set.Slice()
	switch len(results) {
	case 0:
		return nil, nil, nil
	case 1:
	default:
		return nil, nil, fmt.Errorf("wasm: %d results", len(results))
	}
	obj, ok := results[0].Value.(ast.Object)
	if !ok || obj.Len() != 1 {
		return nil, nil, fmt.Errorf("wasm: a result that is not one binding: %v", results[0])
	}
	return obj.Get(obj.Keys()[0]).Value, nil, nil
}

// setTexts points the strings the input's texts were parsed as (empty
// placeholders) at the texts written after the JSON, at addr and on, in
// the order evalInput writes them. The strings are the parser's own, one
// allocation each (json.c); free is cleared, as the texts are not the
// allocator's.
func (vm *wasmVM) setTexts(in *Input, input, addr uint32) error {
	set := func(str uint32, at uint32, text string) error {
		h, ok := vm.mem.Read(str, 12)
		if !ok || h[0] != wasmString || le32(h[4:]) != 0 {
			return errors.New("wasm: a text of the input is not the empty string parsed")
		}
		h[1] = 0
		putLE32(h[4:], uint32(len(text)))
		putLE32(h[8:], at)
		vm.known = append(vm.known, knownString{at, uint32(len(text)), text})
		return nil
	}
	prompt := addr
	addr += uint32(len(in.Prompt))
	if err := set(vm.field(input, "prompt"), prompt, in.Prompt); err != nil {
		return err
	}
	if len(in.Messages) > 0 {
		msgs := vm.field(input, "messages")
		h, ok := vm.mem.Read(msgs, 16)
		if !ok || h[0] != wasmArray || le32(h[8:]) != uint32(len(in.Messages)) {
			return errors.New("wasm: the input's messages are not the array parsed")
		}
		es, ok := vm.mem.Read(le32(h[4:]), 8*uint32(len(in.Messages)))
		if !ok {
			return errors.New("wasm: the input's messages are past the memory")
		}
		for i, m := range in.Messages {
			at := prompt
			if m.Content != in.Prompt {
				at = addr
				addr += uint32(len(m.Content))
			}
			if err := set(vm.field(le32(es[8*i+4:]), "content"), at, m.Content); err != nil {
				return err
			}
		}
	}
	return set(vm.field(input, "output"), addr, in.Output)
}

// field is the value of key in the object at addr (0 if none).
func (vm *wasmVM) field(addr uint32, key string) uint32 {
	h, ok := vm.mem.Read(addr, 16)
	if !ok || h[0] != wasmObject {
		return 0
	}
	bs, ok := vm.mem.Read(le32(h[4:]), 4*le32(h[8:]))
	if !ok {
		return 0
	}
	for seen, b := uint32(0), 0; b < len(bs); b += 4 {
		for e := le32(bs[b:]); e != 0 && seen <= maxElems; seen++ {
			eb, ok := vm.mem.Read(e, 12)
			if !ok {
				return 0
			}
			if kh, ok := vm.mem.Read(le32(eb), 12); ok && kh[0] == wasmString && int(le32(kh[4:])) == len(key) {
				if k, ok := vm.mem.Read(le32(kh[8:]), uint32(len(key))); ok && string(k) == key {
					return le32(eb[4:])
				}
			}
			e = le32(eb[8:])
		}
	}
	return 0
}

func putLE32(b []byte, v uint32) {
	b[0], b[1], b[2], b[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
}

// builtin is opa_builtin<n>: stack holds the built-in's identifier, a
// reserved word and the n arguments' addresses, and gets the result's
// address (0: undefined). As in the interpreter, a built-in's error makes
// the call undefined, a Halt ends the evaluation.
func (vm *wasmVM) builtin(stack []uint64, n int) {
	stack[0] = uint64(vm.callBuiltin(uint32(stack[0]), stack[2:2+n]))
}

func (vm *wasmVM) callBuiltin(id uint32, argAddrs []uint64) uint32 {
	if vm.fault != nil {
		return 0
	}
	if int(id) >= len(vm.q.builtins) || vm.q.builtins[id].fn == nil {
		vm.fault = fmt.Errorf("wasm: a call of the unknown built-in %d", id)
		return 0
	}
	b := vm.q.builtins[id]
	args := vm.args[:len(argAddrs)]
	for i, a := range argAddrs {
		v, err := vm.read(uint32(a))
		if err != nil {
			vm.fault = fmt.Errorf("wasm: an argument of %s: %w", b.name, err)
			return 0
		}
		args[i] = ast.NewTerm(v)
	}
	var out *ast.Term
	err := b.fn(vm.bctx, args, func(t *ast.Term) error {
		out = t
		return nil
	})
	if h, ok := err.(topdown.Halt); ok {
		vm.fault = h
		return 0
	}
	if err != nil || out == nil {
		return 0
	}
	if s, ok := out.Value.(ast.String); ok && len(s) >= minKnown && vm.q.layout {
		return vm.writeString(string(s))
	}
	text, err := appendValue(vm.out[:0], out.Value)
	if err != nil {
		vm.fault = fmt.Errorf("wasm: the result of %s: %w", b.name, err)
		return 0
	}
	vm.out = text
	st := vm.hstack
	st[0] = uint64(len(text))
	if err := vm.malloc.CallWithStack(vm.ctx, st); err != nil {
		vm.fault = err
		return 0
	}
	addr := uint32(st[0])
	if !vm.mem.Write(addr, text) {
		vm.fault = errors.New("wasm: writing past the memory")
		return 0
	}
	st[0], st[1] = uint64(addr), uint64(len(text))
	if err := vm.valueParse.CallWithStack(vm.ctx, st); err != nil {
		vm.fault = err
		return 0
	}
	if st[0] == 0 {
		vm.fault = fmt.Errorf("wasm: the module did not parse the result of %s", b.name)
	}
	return uint32(st[0])
}

// writeString makes s a string value of the module's in one allocation
// (the value, then its bytes; free cleared, the bytes not being the
// allocator's), written as it is rather than as value text parsed, and
// remembers it for the arguments it is passed as (lib.lower_text: 1 KB
// lowered in Go, then handed to switchyard.contains_any, never crossed).
func (vm *wasmVM) writeString(s string) uint32 {
	if len(s) > 1<<30 {
		vm.fault = errors.New("wasm: a built-in's result is too large")
		return 0
	}
	st := vm.hstack
	st[0] = uint64(12 + len(s))
	if err := vm.malloc.CallWithStack(vm.ctx, st); err != nil {
		vm.fault = err
		return 0
	}
	addr := uint32(st[0])
	var h [12]byte
	h[0] = wasmString
	putLE32(h[4:], uint32(len(s)))
	putLE32(h[8:], addr+12)
	if !vm.mem.Write(addr, h[:]) || !vm.mem.WriteString(addr+12, s) {
		vm.fault = errors.New("wasm: writing past the memory")
		return 0
	}
	vm.known = append(vm.known, knownString{addr + 12, uint32(len(s)), s})
	return addr
}

// hostAbort is opa_abort: the module gave up (an internal error, a
// conflict between rules' values, memory). The evaluation ends with the
// message; Engine.Eval hands it to the interpreter.
func hostAbort(ctx context.Context, m api.Module, stack []uint64) {
	msg := "aborted"
	if s, err := vmOf(ctx).cstring(uint32(stack[0])); err == nil {
		msg = string(s)
	}
	panic(fmt.Errorf("wasm: opa_abort: %s", msg))
}

// The memory layout of OPA's Wasm values (wasm/src/value.h in OPA's
// repository, wasm32), which readValue reads straight from memory: this
// spares a dump of the text for every built-in it is passed to
// (opa_value_dump escapes a 1 KB text in about 20 µs) and of the decision.
// Every value starts with its type byte.
//
//	null      {1}
//	boolean   {2, v}; interned (a constant of the module) {9, v}
//	number    {3, repr, pad x6, then at 8: i64 (repr 1) or {text u32, len u32} (repr 2)}
//	string    {4, free, pad x2, len u32, bytes u32}; interned {8, ...} the same
//	array     {5, pad x3, elems u32, len u32, cap u32}, elements {index u32, value u32}
//	object    {6, pad x3, buckets u32, n u32, len u32}, chains {key u32, value u32, next u32}
//	set       {7, pad x3, buckets u32, n u32, len u32}, chains {value u32, next u32}
//
// This layout is not part of the ABI: checkLayout compares it with
// opa_value_dump on values the module parsed, and a module where they
// differ is read through the dump only. The kinds a parse does not make
// (interned strings and booleans, numbers held as integers) are checked
// the same way on the first value that holds one (wasmVM.verify).
const (
	wasmNull            = 1
	wasmBoolean         = 2
	wasmNumber          = 3
	wasmString          = 4
	wasmArray           = 5
	wasmObject          = 6
	wasmSet             = 7
	wasmStringInterned  = 8
	wasmBooleanInterned = 9
)

// The kinds of value checked on first use (wasmQuery.verified, differ).
const (
	kindInternedString = 1 << iota
	kindInternedBoolean
	kindInt
	allKinds = kindInternedString | kindInternedBoolean | kindInt
)

// maxElems bounds the elements readValue reads in one collection.
const maxElems = 1 << 20

// readValue reads the value at addr. Of the kinds checked on first use it
// reads those in allowed, and adds those it read to *used.
func (vm *wasmVM) readValue(addr uint32, depth int, allowed uint32, used *uint32) (ast.Value, bool) {
	if depth > maxValueDepth {
		return nil, false
	}
	h, ok := vm.mem.Read(addr, 16)
	if !ok {
		return nil, false
	}
	switch h[0] {
	case wasmNull:
		return ast.Null{}, true
	case wasmBooleanInterned:
		if allowed&kindInternedBoolean == 0 {
			return nil, false
		}
		*used |= kindInternedBoolean
		fallthrough
	case wasmBoolean:
		switch h[1] {
		case 0:
			return ast.Boolean(false), true
		case 1:
			return ast.Boolean(true), true
		}
		return nil, false
	case wasmNumber:
		switch h[1] {
		case 1:
			if allowed&kindInt == 0 {
				return nil, false
			}
			*used |= kindInt
			return ast.Number(strconv.FormatInt(int64(le64(h[8:])), 10)), true
		case 2:
			b, ok := vm.mem.Read(le32(h[8:]), le32(h[12:]))
			if !ok {
				return nil, false
			}
			if _, n, ok := scanNumber(b); !ok || n != len(b) {
				return nil, false
			}
			return ast.Number(b), true
		}
		return nil, false
	case wasmStringInterned:
		if allowed&kindInternedString == 0 {
			return nil, false
		}
		*used |= kindInternedString
		fallthrough
	case wasmString:
		n, p := le32(h[4:]), le32(h[8:])
		if s, ok := vm.knownText(p, n); ok {
			return ast.String(s), true
		}
		b, ok := vm.mem.Read(p, n)
		if !ok || !utf8.Valid(b) {
			return nil, false
		}
		return ast.String(b), true
	case wasmArray:
		elems, n := le32(h[4:]), le32(h[8:])
		if n > maxElems {
			return nil, false
		}
		es, ok := vm.mem.Read(elems, 8*n)
		if !ok {
			return nil, false
		}
		key := vm.constKey(es, allowed)
		if key != nil {
			if v := vm.q.constant(key); v != nil {
				*used |= kindInternedString
				return v, true
			}
		}
		ts := make([]*ast.Term, n)
		for i := range ts {
			v, ok := vm.readValue(le32(es[8*i+4:]), depth+1, allowed, used)
			if !ok {
				return nil, false
			}
			ts[i] = ast.NewTerm(v)
		}
		arr := ast.NewArray(ts...)
		if key != nil {
			vm.q.addConstant(key, arr)
		}
		return arr, true
	case wasmObject, wasmSet:
		isObj := h[0] == wasmObject
		buckets, n, size := le32(h[4:]), le32(h[8:]), le32(h[12:])
		if n > maxElems || size > maxElems {
			return nil, false
		}
		bs, ok := vm.mem.Read(buckets, 4*n)
		if !ok {
			return nil, false
		}
		var obj ast.Object
		var elems []*ast.Term
		if isObj {
			obj = ast.NewObject()
		} else {
			elems = make([]*ast.Term, 0, size)
		}
		seen := uint32(0)
		for b := range n {
			for e := le32(bs[4*b:]); e != 0; {
				if seen++; seen > size {
					return nil, false
				}
				eb, ok := vm.mem.Read(e, 12)
				if !ok {
					return nil, false
				}
				k, ok := vm.readValue(le32(eb), depth+1, allowed, used)
				if !ok {
					return nil, false
				}
				if !isObj {
					elems = append(elems, ast.NewTerm(k))
					e = le32(eb[4:])
					continue
				}
				v, ok := vm.readValue(le32(eb[4:]), depth+1, allowed, used)
				if !ok {
					return nil, false
				}
				kt := ast.NewTerm(k)
				if obj.Get(kt) != nil {
					return nil, false
				}
				obj.Insert(kt, ast.NewTerm(v))
				e = le32(eb[8:])
			}
		}
		if seen != size {
			return nil, false
		}
		if isObj {
			return obj, true
		}
		return ast.NewSet(elems...), true
	}
	return nil, false
}

// An array of the module's constant strings (a list in the policy, such
// as the injection triggers) is the same value whenever it is made: its
// elements are interned strings, at fixed addresses in the module's data,
// which nothing writes. Such arrays are read once per query and shared
// (OPA's values are not modified once built); maxConstants bounds them.
const maxConstants = 256

// constKey is the key of the array whose elements es are (the addresses
// of its elements, when all are interned strings and those may be read),
// else nil. It is valid until the next call.
func (vm *wasmVM) constKey(es []byte, allowed uint32) []byte {
	n := len(es) / 8
	if allowed&kindInternedString == 0 || n == 0 || n > 64 {
		return nil
	}
	key := vm.key[:0]
	for i := range n {
		a := le32(es[8*i+4:])
		t, ok := vm.mem.ReadByte(a)
		if !ok || t != wasmStringInterned {
			return nil
		}
		key = append(key, es[8*i+4:8*i+8]...)
	}
	vm.key = key
	return key
}

func (q *wasmQuery) constant(key []byte) ast.Value {
	q.constMu.RLock()
	v := q.consts[string(key)]
	q.constMu.RUnlock()
	return v
}

func (q *wasmQuery) addConstant(key []byte, v ast.Value) {
	q.constMu.Lock()
	if len(q.consts) < maxConstants {
		if q.consts == nil {
			q.consts = map[string]ast.Value{}
		}
		q.consts[string(key)] = v
	}
	q.constMu.Unlock()
}

func le32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

func le64(b []byte) uint64 { return uint64(le32(b)) | uint64(le32(b[4:]))<<32 }

// layoutProbe is what checkLayout reads both ways: every kind a parse
// makes, objects and sets large enough to have several buckets.
const layoutProbe = `["h\u00e9 \"llo\"", "", ["x", "yz", []], "a\nb", null, true, false, 0, -12, 3.5e10, 1.25,
	{}, set(), {"a": 1, "b": [true], "c": {"d": null}, "e": "f", "g": set(), "h": 2, "i": 3, "j": 4, "k": 5, "l": 6},
	{1, "two", [3], {"four": 4}, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17}]`

// checkLayout reports whether readValue reads what opa_value_dump
// writes, on values the module parsed, and marks the kinds checked on
// first use that it read as checked.
func (vm *wasmVM) checkLayout() bool {
	addr, err := vm.write([]byte(layoutProbe))
	if err != nil {
		return false
	}
	v, err := vm.call1(vm.valueParse, uint64(addr), uint64(len(layoutProbe)))
	if err != nil || v == 0 {
		return false
	}
	// The parser makes its booleans interned ones.
	var used uint32
	got, ok := vm.readValue(v, 0, kindInternedBoolean, &used)
	if !ok {
		return false
	}
	want, err := vm.dumped(v)
	if err != nil || ast.Compare(got, want) != 0 || ast.Compare(want, ast.MustParseTerm(layoutProbe).Value) != 0 {
		return false
	}
	vm.q.verified.Store(used)
	return true
}

// read is the value at addr: from memory where it can, else through
// opa_value_dump, which also checks the kinds it holds that are checked
// on first use.
func (vm *wasmVM) read(addr uint32) (ast.Value, error) {
	q := vm.q
	if q.layout {
		var used uint32
		if v, ok := vm.readValue(addr, 0, q.verified.Load(), &used); ok {
			return v, nil
		}
	}
	v, err := vm.dumped(addr)
	if err != nil {
		return nil, err
	}
	if q.layout {
		var used uint32
		if got, ok := vm.readValue(addr, 0, allKinds&^q.differ.Load(), &used); ok && used != 0 {
			if ast.Compare(got, v) == 0 {
				q.verified.Or(used)
			} else {
				q.differ.Or(used)
			}
		}
	}
	return v, nil
}

// dumped is the value at addr through opa_value_dump and parseValue.
// Calls into the module from here use their own stack: vm.stack may hold
// the evaluation's.
func (vm *wasmVM) dumped(addr uint32) (ast.Value, error) {
	st := vm.hstack
	st[0] = uint64(addr)
	if err := vm.valueDump.CallWithStack(vm.ctx, st); err != nil {
		return nil, err
	}
	s, err := vm.cstring(uint32(st[0]))
	if err != nil {
		return nil, err
	}
	return parseValue(s)
}

// quickDecision reads the decision straight from the result set at addr
// when it is of the usual shape with nothing found: allow a boolean,
// deny and review empty, redact and tags empty, route a string, no cap
// (a clean prompt's, with the default library). It returns what
// decisionOf returns for that value; for any other it reports false and
// the value is read as usual (readValue, then decodeValue), where reading
// it costs about 4 µs on a clean prompt: a few ast objects and sets.
func (vm *wasmVM) quickDecision(addr uint32) (*Decision, bool) {
	q := vm.q
	verified := q.verified.Load()
	if !q.layout || verified&kindInternedString == 0 {
		return nil, false
	}
	// {{"result": decision}}
	set, ok := vm.onlyElement(addr, wasmSet)
	if !ok {
		return nil, false
	}
	obj, ok := vm.onlyElement(le32(set), wasmObject)
	if !ok {
		return nil, false
	}
	dec := le32(obj[4:])
	h, ok := vm.mem.Read(dec, 16)
	if !ok || h[0] != wasmObject {
		return nil, false
	}
	buckets, n, size := le32(h[4:]), le32(h[8:]), le32(h[12:])
	if size > 16 {
		return nil, false
	}
	bs, ok := vm.mem.Read(buckets, 4*n)
	if !ok {
		return nil, false
	}
	d := &Decision{}
	seenAllow := false
	seen := uint32(0)
	for b := range n {
		for e := le32(bs[4*b:]); e != 0; {
			if seen++; seen > size {
				return nil, false
			}
			eb, ok := vm.mem.Read(e, 12)
			if !ok {
				return nil, false
			}
			key, ok := vm.stringAt(le32(eb), verified)
			if !ok {
				return nil, false
			}
			v, ok := vm.mem.Read(le32(eb[4:]), 16)
			if !ok {
				return nil, false
			}
			switch string(key) {
			case "allow":
				if !(v[0] == wasmBoolean || v[0] == wasmBooleanInterned && verified&kindInternedBoolean != 0) || v[1] > 1 {
					return nil, false
				}
				d.Allow, seenAllow = v[1] == 1, true
			case "deny", "review":
				if !emptyCollection(v) {
					return nil, false
				}
				if string(key) == "deny" {
					d.Deny = []Rule{}
				} else {
					d.Review = []Rule{}
				}
			case "redact", "tags":
				if !emptyCollection(v) {
					return nil, false
				}
			case "route":
				s, ok := vm.stringAt(le32(eb[4:]), verified)
				if !ok {
					return nil, false
				}
				d.Route = string(s)
			default: // cap, or a key decodeValue rejects
				return nil, false
			}
			e = le32(eb[8:])
		}
	}
	if seen != size || !seenAllow || d.Allow != (len(d.Deny) == 0) {
		return nil, false
	}
	return d, true
}

// onlyElement is the element entry of the set (its value at 0), or the
// object's (key at 0, value at 4), at addr when it has exactly one.
func (vm *wasmVM) onlyElement(addr uint32, typ byte) ([]byte, bool) {
	h, ok := vm.mem.Read(addr, 16)
	if !ok || h[0] != typ || le32(h[12:]) != 1 {
		return nil, false
	}
	n := le32(h[8:])
	if n > maxElems {
		return nil, false
	}
	bs, ok := vm.mem.Read(le32(h[4:]), 4*n)
	if !ok {
		return nil, false
	}
	for b := range n {
		if e := le32(bs[4*b:]); e != 0 {
			return vm.mem.Read(e, 12)
		}
	}
	return nil, false
}

// stringAt is the bytes of the string (or interned string, when those
// are verified) at addr, valid UTF-8, as a view of the memory.
func (vm *wasmVM) stringAt(addr uint32, verified uint32) ([]byte, bool) {
	h, ok := vm.mem.Read(addr, 12)
	if !ok || !(h[0] == wasmString || h[0] == wasmStringInterned && verified&kindInternedString != 0) {
		return nil, false
	}
	b, ok := vm.mem.Read(le32(h[8:]), le32(h[4:]))
	if !ok || !utf8.Valid(b) {
		return nil, false
	}
	return b, true
}

// emptyCollection reports whether the value whose header is h is null, an
// empty array or an empty set (what eachOf goes through without a call).
func emptyCollection(h []byte) bool {
	switch h[0] {
	case wasmNull:
		return true
	case wasmArray:
		return le32(h[8:]) == 0
	case wasmSet:
		return le32(h[12:]) == 0
	}
	return false
}
