// Package spectest validates JSON bodies against the schemas of the public
// OpenAI OpenAPI specification, for the integration tests of the gateway and
// the simulator.
//
// The specification is read from ../shared/openai-openapi/openapi.json
// relative to the module root (the directory holding go.mod, found by walking
// up from the working directory), or from the file named by the environment
// variable SWITCHYARD_OPENAPI_SPEC when it is set. It is loaded and
// preprocessed once per test binary; each schema is compiled on first use and
// cached.
//
// The specification lives outside the module, so it may be absent. Then the
// test helpers (Need, Check) skip with the reason, unless the environment
// variable SWITCHYARD_REQUIRE_SPEC is 1 or true: then a missing specification
// fails the test. .ci/run sets it when it has found the file, so CI cannot
// pass with the conformance checks silently off.
//
// The specification still marks many fields with the OpenAPI 3.0 keyword
// `nullable: true`. Before compiling, every schema object carrying it is
// rewritten into {"anyOf": [<schema without nullable>, {"type": "null"}]}, so
// a JSON Schema 2020-12 validator accepts null there as well. A few other
// leftovers of older dialects are rewritten too (boolean exclusiveMinimum,
// repeated required names, $recursiveRef), so every component compiles. Format
// assertions are off, and fields a schema does not mention are accepted unless
// the schema itself forbids them.
//
// Known limitation of the specification: base64 embeddings
// (encoding_format "base64") never match CreateEmbeddingResponse, which only
// allows arrays of numbers; callers must not validate those. Likewise the
// spec has no schema of its own for streamed legacy completions: their chunks
// follow CreateCompletionResponse, whose finish_reason is not nullable, so
// every chunk but the last (finish_reason null) fails it.
//
// # Open Inference Protocol
//
// The package also validates bodies against the Open Inference Protocol
// (KServe v2 REST) specification: LoadOIP, NeedOIP and CheckOIP are the
// counterparts of Load, Need and Check, for the component schemas of
// open_inference_rest.yaml.
//
// The specification is read from
// ../shared/open-inference-protocol/open_inference_rest.yaml relative to the
// module root, or from the file named by SWITCHYARD_OIP_SPEC. It is YAML
// (OpenAPI 3.0): it is decoded with gopkg.in/yaml.v3, turned into JSON
// values, and given the same preprocessing as the OpenAI specification
// (the nullable rewrite and the others above) before the components are
// compiled with santhosh-tekuri/jsonschema/v6. A missing file
// skips the tests, or fails them when SWITCHYARD_REQUIRE_SPEC asks for the
// specifications (see Required).
//
// The component schema names, as the YAML spells them:
//
//   - inference_request, request_input, request_output: the body of
//     POST /v2/models/{name}/infer and its parts;
//   - inference_response, response_output: its answer;
//   - inference_error_response: {"error": "..."}; note that the
//     specification does not make "error" required;
//   - tensor_data: the (possibly nested) "data" array; parameters: the
//     parameters object;
//   - metadata_server_response, metadata_server_error_response: GET /v2;
//   - metadata_model_response, metadata_tensor,
//     metadata_model_error_response: GET /v2/models/{name}.
//
// The schemas are looser than the protocol's text: they do not tie data to
// shape or datatype (internal/oip checks that), and they accept any
// datatype string.
package spectest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// printer renders validation messages; the jsonschema package needs one.
var printer = message.NewPrinter(language.English)

// ErrNoSpec is returned by Load when the specification file does not exist.
// Tests skip rather than fail on it, since the file lives outside the module,
// unless Required says otherwise.
var ErrNoSpec = errors.New("spectest: OpenAI OpenAPI specification not found")

// EnvSpecPath names the environment variable that, when set, overrides where
// the specification file is looked for.
const EnvSpecPath = "SWITCHYARD_OPENAPI_SPEC"

// EnvRequireSpec names the environment variable that, when 1 or true, makes
// a missing specification fail the tests instead of skipping them.
const EnvRequireSpec = "SWITCHYARD_REQUIRE_SPEC"

// Required reports whether EnvRequireSpec asks for the specification: its
// value is 1, true or yes, in any case.
func Required() bool {
	switch strings.ToLower(strings.TrimSpace(os.Getenv(EnvRequireSpec))) {
	case "1", "true", "yes":
		return true
	}
	return false
}

// specRelPath is the location of the specification relative to the module root.
var specRelPath = filepath.Join("..", "shared", "openai-openapi", "openapi.json")

// docURL is the URL the preprocessed document is registered under; it is a
// name only, nothing is fetched from it.
const docURL = "urn:switchyard:openai-openapi.json"

// maxListedErrors bounds how many failing locations one error lists.
const maxListedErrors = 40

// Spec is a loaded and preprocessed OpenAI OpenAPI specification. It is safe
// for concurrent use.
type Spec struct {
	path string

	names map[string]bool // component schema names

	mu       sync.Mutex // guards compiler and schemas
	compiler *jsonschema.Compiler
	schemas  map[string]*compiled
}

// compiled is the result of compiling one component schema, kept whether it
// succeeded or not so a broken schema is reported once per binary, not
// recompiled by every caller.
type compiled struct {
	sch *jsonschema.Schema
	err error
}

var (
	loadOnce sync.Once
	loaded   *Spec
	loadErr  error
)

// Load finds, reads and preprocesses the specification. It does the work once
// per process and returns the same *Spec (or error) to every caller. When the
// file does not exist the error wraps ErrNoSpec and says where it looked.
func Load() (*Spec, error) {
	loadOnce.Do(func() {
		var path string
		path, loadErr = specPath()
		if loadErr != nil {
			return
		}
		loaded, loadErr = LoadFile(path)
	})
	return loaded, loadErr
}

// LoadFile reads and preprocesses the specification at path, without the
// per-process caching of Load. A missing file gives an error wrapping
// ErrNoSpec.
func LoadFile(path string) (*Spec, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w at %s", ErrNoSpec, path)
		}
		return nil, fmt.Errorf("spectest: opening specification: %w", err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		return nil, fmt.Errorf("spectest: decoding specification %s: %w", path, err)
	}
	root, ok := doc.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("spectest: specification %s is not a JSON object", path)
	}
	comps, _ := root["components"].(map[string]any)
	schemas, ok := comps["schemas"].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("spectest: specification %s has no components.schemas", path)
	}
	names := make(map[string]bool, len(schemas))
	for n := range schemas {
		names[n] = true
	}
	// Only component schemas are kept; paths and the rest are left out, so
	// the compiler never walks them.
	normalizeComponents(schemas)
	doc = map[string]any{"components": map[string]any{"schemas": schemas}}

	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	if err := c.AddResource(docURL, doc); err != nil {
		return nil, fmt.Errorf("spectest: registering specification: %w", err)
	}
	// No references outside the document are expected; refuse any instead of
	// reaching for the file system or network.
	c.UseLoader(noLoader{})
	return &Spec{path: path, names: names, compiler: c, schemas: make(map[string]*compiled)}, nil
}

// Path returns the file the specification was read from.
func (s *Spec) Path() string { return s.path }

// Validate checks body, one JSON document, against the component schema
// named schema (for example "CreateChatCompletionStreamResponse"). It returns
// nil when the body conforms; otherwise an error naming the schema and listing
// each failing location in the body with the reason.
func (s *Spec) Validate(schema string, body []byte) error {
	sch, err := s.schema(schema)
	if err != nil {
		return err
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("spectest: body is not valid JSON for %s: %w", schema, err)
	}
	if err := sch.Validate(v); err != nil {
		var ve *jsonschema.ValidationError
		if errors.As(err, &ve) {
			return &MismatchError{Schema: schema, Failures: failures(ve)}
		}
		return fmt.Errorf("spectest: validating against %s: %w", schema, err)
	}
	return nil
}

// schema returns the compiled component schema name, compiling it on first
// use.
func (s *Spec) schema(name string) (*jsonschema.Schema, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.schemas[name]; ok {
		return c.sch, c.err
	}
	c := &compiled{}
	if name == "" || strings.ContainsAny(name, "/#~") {
		c.err = fmt.Errorf("spectest: invalid schema name %q: want a component name such as CreateChatCompletionResponse", name)
	} else if !s.names[name] {
		c.err = fmt.Errorf("spectest: schema %q is not in components.schemas of %s", name, s.path)
	} else {
		c.sch, c.err = s.compiler.Compile(docURL + "#/components/schemas/" + name)
		if c.err != nil {
			c.err = fmt.Errorf("spectest: compiling schema %s: %w", name, c.err)
		}
	}
	s.schemas[name] = c
	return c.sch, c.err
}

// Failure is one failing location of a body.
type Failure struct {
	// Path is the JSON pointer of the failing value in the body ("" is the
	// whole body).
	Path string
	// Reason says what the schema expected there.
	Reason string
}

// MismatchError is returned by Validate when a body does not conform to its
// schema.
type MismatchError struct {
	Schema   string
	Failures []Failure
}

// Error lists the failing locations, one per line.
func (e *MismatchError) Error() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "spectest: body does not match %s:", e.Schema)
	for i, f := range e.Failures {
		if i == maxListedErrors {
			fmt.Fprintf(&sb, "\n  ... and %d more", len(e.Failures)-i)
			break
		}
		p := f.Path
		if p == "" {
			p = "(root)"
		}
		fmt.Fprintf(&sb, "\n  at %s: %s", p, f.Reason)
	}
	return sb.String()
}

// failures flattens a validation error tree into its leaves, the concrete
// reasons, sorted by path and without duplicates.
func failures(ve *jsonschema.ValidationError) []Failure {
	seen := make(map[Failure]bool)
	var out []Failure
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) > 0 {
			for _, c := range e.Causes {
				walk(c)
			}
			return
		}
		f := Failure{Path: pointer(e.InstanceLocation), Reason: e.ErrorKind.LocalizedString(printer)}
		if !seen[f] {
			seen[f] = true
			out = append(out, f)
		}
	}
	walk(ve)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// pointer renders tokens as a JSON pointer (RFC 6901).
func pointer(tokens []string) string {
	var sb strings.Builder
	for _, t := range tokens {
		sb.WriteByte('/')
		sb.WriteString(escapePointerToken(t))
	}
	return sb.String()
}

// Need loads the specification for a test that cannot run without it. When
// the file is absent it skips the test with the reason, or fails it when
// Required. Any other failure to load fails the test.
func Need(tb testing.TB) *Spec {
	tb.Helper()
	return openAI.need(tb)
}

// Check is the test helper: it validates body against the component schema
// named schema and reports a mismatch with t.Errorf, showing the body. Any
// failure to load or compile is reported with t.Fatalf.
//
// When the specification is absent, only the conformance check is left out:
// the rest of the test goes on, and when it ends without failing it is
// marked skipped, with the reason (t.Skip from a cleanup). When Required, a
// missing specification fails the test at once instead.
func Check(t testing.TB, schema string, body []byte) {
	t.Helper()
	openAI.check(t, schema, body)
}

// specSource is one specification the helpers check against.
type specSource struct {
	title    string // "OpenAI", "Open Inference Protocol"
	what     string // what the checks are, for the skip message
	env      string // the variable naming the file
	missing  error  // what load wraps when the file is absent
	load     func() (*Spec, error)
	skipping sync.Map // testing.TB -> struct{}: tests skipAtEnd has scheduled
}

var openAI = &specSource{title: "OpenAI", what: "OpenAPI", env: EnvSpecPath, missing: ErrNoSpec, load: Load}

func (src *specSource) need(tb testing.TB) *Spec {
	tb.Helper()
	s, err := src.load()
	if errors.Is(err, src.missing) {
		if Required() {
			tb.Fatalf("%s is set, but: %v", EnvRequireSpec, err)
		}
		tb.Skipf("skipping: %v (set %s to the file)", err, src.env)
	}
	if err != nil {
		tb.Fatalf("loading %s specification: %v", src.title, err)
	}
	return s
}

func (src *specSource) check(t testing.TB, schema string, body []byte) {
	t.Helper()
	s, err := src.load()
	if errors.Is(err, src.missing) {
		if Required() {
			t.Fatalf("%s is set, but: %v", EnvRequireSpec, err)
		}
		src.skipAtEnd(t, err)
		return
	}
	if err != nil {
		t.Fatalf("loading %s specification: %v", src.title, err)
	}
	err = s.Validate(schema, body)
	var me *MismatchError
	switch {
	case err == nil:
	case errors.As(err, &me):
		t.Errorf("%v\nbody: %s", err, body)
	default:
		t.Fatalf("%v", err)
	}
}

// skipAtEnd marks t skipped when it ends without failing, once per test.
func (src *specSource) skipAtEnd(t testing.TB, reason error) {
	if _, dup := src.skipping.LoadOrStore(t, struct{}{}); dup {
		return
	}
	t.Cleanup(func() {
		src.skipping.Delete(t)
		if !t.Failed() {
			t.Skipf("the %s conformance checks were skipped: %v (set %s to the file)", src.what, reason, src.env)
		}
	})
}

// specPath returns where the specification should be: the override in
// EnvSpecPath, else specRelPath from the module root.
func specPath() (string, error) { return modulePath(EnvSpecPath, specRelPath, ErrNoSpec) }

// modulePath returns the file named by the environment variable env, else
// rel from the module root (the directory holding go.mod above the working
// directory); missing is wrapped when there is no module root.
func modulePath(env, rel string, missing error) (string, error) {
	if p := os.Getenv(env); p != "" {
		return p, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("spectest: finding working directory: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, rel), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("%w: no go.mod above the working directory", missing)
		}
		dir = parent
	}
}

// noLoader refuses every external reference.
type noLoader struct{}

func (noLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("spectest: external reference %s is not loaded", url)
}
