package spectest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"
)

// ErrNoOIPSpec is returned by LoadOIP when the Open Inference Protocol
// specification file does not exist. NeedOIP and CheckOIP skip on it unless
// Required.
var ErrNoOIPSpec = errors.New("spectest: Open Inference Protocol specification not found")

// EnvOIPSpecPath names the environment variable that, when set, overrides
// where the Open Inference Protocol specification is looked for.
const EnvOIPSpecPath = "SWITCHYARD_OIP_SPEC"

// oipRelPath is the location of the specification relative to the module
// root.
var oipRelPath = filepath.Join("..", "shared", "open-inference-protocol", "open_inference_rest.yaml")

var (
	oipOnce    sync.Once
	oipLoaded  *Spec
	oipLoadErr error
)

// LoadOIP finds, reads and preprocesses the Open Inference Protocol
// specification, once per process, and returns the same *Spec (or error) to
// every caller. When the file does not exist the error wraps ErrNoOIPSpec
// and says where it looked.
func LoadOIP() (*Spec, error) {
	oipOnce.Do(func() {
		var path string
		path, oipLoadErr = oipSpecPath()
		if oipLoadErr != nil {
			return
		}
		oipLoaded, oipLoadErr = LoadOIPFile(path)
	})
	return oipLoaded, oipLoadErr
}

// LoadOIPFile reads and preprocesses the Open Inference Protocol
// specification (YAML) at path, without the caching of LoadOIP. A missing
// file gives an error wrapping ErrNoOIPSpec.
func LoadOIPFile(path string) (*Spec, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w at %s", ErrNoOIPSpec, path)
		}
		return nil, fmt.Errorf("spectest: reading specification: %w", err)
	}
	var root struct {
		Components struct {
			Schemas map[string]any `yaml:"schemas"`
		} `yaml:"components"`
	}
	if err := yaml.Unmarshal(raw, &root); err != nil {
		return nil, fmt.Errorf("spectest: decoding specification %s: %w", path, err)
	}
	if len(root.Components.Schemas) == 0 {
		return nil, fmt.Errorf("spectest: specification %s has no components.schemas", path)
	}
	// Through encoding/json and back, so the values are what the compiler
	// expects from a JSON document (json.Number, map[string]any); YAML maps
	// with keys other than strings fail here.
	js, err := json.Marshal(map[string]any{"components": map[string]any{"schemas": root.Components.Schemas}})
	if err != nil {
		return nil, fmt.Errorf("spectest: converting specification %s to JSON: %w", path, err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(js))
	if err != nil {
		return nil, fmt.Errorf("spectest: converting specification %s to JSON: %w", path, err)
	}
	schemas := doc.(map[string]any)["components"].(map[string]any)["schemas"].(map[string]any)
	names := make(map[string]bool, len(schemas))
	for n := range schemas {
		names[n] = true
	}
	normalizeComponents(schemas)

	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	// Each Spec has a compiler of its own, so the document may be
	// registered under the URL Spec.schema compiles from, docURL, although
	// that names the OpenAI document; nothing is fetched from it.
	if err := c.AddResource(docURL, doc); err != nil {
		return nil, fmt.Errorf("spectest: registering specification: %w", err)
	}
	c.UseLoader(noLoader{})
	return &Spec{path: path, names: names, compiler: c, schemas: make(map[string]*compiled)}, nil
}

var oipSource = &specSource{title: "Open Inference Protocol", what: "Open Inference Protocol", env: EnvOIPSpecPath, missing: ErrNoOIPSpec, load: LoadOIP}

// NeedOIP loads the Open Inference Protocol specification for a test that
// cannot run without it, like Need: it skips when the file is absent, or
// fails when Required; any other failure to load fails the test.
func NeedOIP(tb testing.TB) *Spec {
	tb.Helper()
	return oipSource.need(tb)
}

// CheckOIP validates body against the Open Inference Protocol component
// schema named schema (e.g. "inference_response"), like Check: a mismatch is
// reported with t.Errorf showing the body, a failure to load or compile with
// t.Fatalf. When the specification is absent the rest of the test goes on
// and, unless it fails, is marked skipped at its end; when Required, a
// missing specification fails the test at once.
func CheckOIP(t testing.TB, schema string, body []byte) {
	t.Helper()
	oipSource.check(t, schema, body)
}

// oipSpecPath returns where the specification should be: the override in
// EnvOIPSpecPath, else oipRelPath from the module root.
func oipSpecPath() (string, error) { return modulePath(EnvOIPSpecPath, oipRelPath, ErrNoOIPSpec) }
