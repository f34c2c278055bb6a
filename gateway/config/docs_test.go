package config

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

const docsPath = "../../docs/config.md"

// TestDocsExample checks that the annotated example in docs/config.md is a
// valid config.
func TestDocsExample(t *testing.T) {
	doc, err := os.ReadFile(docsPath)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)## Complete annotated example\n\n```yaml\n(.*?)```").FindSubmatch(doc)
	if m == nil {
		t.Fatal("no annotated example in docs/config.md")
	}
	env := map[string]string{"SWITCHYARD_ADMIN_TOKEN": "t", "VLLM_API_KEY": "k", "OPENAI_API_KEY": "k"}
	if _, err := ParseEnv(m[1], "docs/config.md example", func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}); err != nil {
		t.Fatalf("the documented example is invalid:\n%v", err)
	}
}

// TestDocsCoverEveryKey checks that every config key is in the reference
// tables of docs/config.md, written as in the tables: full paths in the
// single sections (`server.read_timeout`), element-relative paths in the
// list sections (`timeouts.connect`, `targets[].backend`).
func TestDocsCoverEveryKey(t *testing.T) {
	doc, err := os.ReadFile(docsPath)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	var walk func(prefix string, typ reflect.Type, top bool)
	walk = func(prefix string, typ reflect.Type, top bool) {
		for i := range typ.NumField() {
			f := typ.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name == "-" || name == "" {
				continue
			}
			key := prefix + name
			ft := f.Type
			if ft.Kind() != reflect.Struct || top { // plain sub-maps have rows for their keys
				keys = append(keys, key)
			}
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			switch {
			case ft.Kind() == reflect.Struct && ft != typeStageRef:
				walk(key+".", ft, false)
			case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct && ft.Elem() != typeStageRef:
				if top {
					walk("", ft.Elem(), false) // list sections: element-relative keys
				} else {
					walk(key+"[].", ft.Elem(), false)
				}
			}
		}
	}
	walk("", reflect.TypeFor[Config](), true)
	for _, k := range keys {
		if !strings.Contains(string(doc), "| `"+k+"` |") {
			t.Errorf("docs/config.md has no table row for `%s`", k)
		}
	}
}

// TestFieldDocs checks that every field of the config structs has a doc
// comment: the field comments are the config reference.
func TestFieldDocs(t *testing.T) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "config.go", nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	ast.Inspect(f, func(n ast.Node) bool {
		ts, ok := n.(*ast.TypeSpec)
		if !ok {
			return true
		}
		st, ok := ts.Type.(*ast.StructType)
		if !ok {
			return false
		}
		for _, fld := range st.Fields.List {
			if len(fld.Names) == 0 || !fld.Names[0].IsExported() {
				continue
			}
			if fld.Doc == nil || strings.TrimSpace(fld.Doc.Text()) == "" {
				t.Errorf("%s.%s has no doc comment", ts.Name.Name, fld.Names[0].Name)
			}
		}
		return false
	})
}
