package policy

import (
	"fmt"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/types"

	"switchyard/policy/detect"
)

// The custom builtins every policy may call (documented in docs/guard.md).
// They are registered with OPA once, for the engine, `switchyard policy
// test` and the Rego test runner alike. The rules that use them are
// evaluated once per evaluation (OPA caches rule values), so they are not
// memoized.
func init() {
	str1 := func(name, desc string, result types.Type, f func(string) *ast.Term) {
		rego.RegisterBuiltin1(&rego.Function{
			Name:        name,
			Description: desc,
			Decl:        types.NewFunction(types.Args(types.Named("text", types.S)), types.Named("result", result)),
		}, func(_ rego.BuiltinContext, a *ast.Term) (*ast.Term, error) {
			s, ok := a.Value.(ast.String)
			if !ok {
				return nil, fmt.Errorf("%s: the argument is %s, not a string", name, ast.ValueName(a.Value))
			}
			return f(string(s)), nil
		})
	}
	finding := types.NewObject([]*types.StaticProperty{
		types.NewStaticProperty("text", types.S),
		types.NewStaticProperty("type", types.S),
	}, nil)
	str1("switchyard.pii", "personal data in the text: [{type, text}], types email, phone, card, iban, ssn, ni, dni, ipv4, ipv6",
		types.NewArray(nil, finding), func(s string) *ast.Term {
			fs := detect.PII(s)
			if len(fs) == 0 {
				return ast.InternedEmptyArray
			}
			ts := make([]*ast.Term, len(fs))
			for i, f := range fs {
				ts[i] = ast.ObjectTerm(
					ast.Item(ast.InternedTerm("text"), ast.StringTerm(f.Text)),
					ast.Item(ast.InternedTerm("type"), ast.StringTerm(f.Type)))
			}
			return ast.ArrayTerm(ts...)
		})
	str1("switchyard.lower", "the text in lower case, as lower (in Go under either evaluator: the WebAssembly module's own lower costs about 4 µs per KB)",
		types.S, func(s string) *ast.Term { return ast.StringTerm(strings.ToLower(s)) })
	str1("switchyard.secrets", "the kinds of credential in the text (sorted names)",
		types.NewArray(nil, types.S), func(s string) *ast.Term { return strList(detect.Secrets(s)) })
	str1("switchyard.decoded_tokens", "the long base64 tokens of the text that decode to printable text, decoded",
		types.NewArray(nil, types.S), func(s string) *ast.Term {
			var out []string
			for _, tok := range detect.LongTokens(s) {
				if d, ok := detect.DecodedText(tok); ok {
					out = append(out, d)
				}
			}
			return strList(out)
		})
	str1("switchyard.luhn", "whether the digits pass the Luhn check",
		types.B, func(s string) *ast.Term { return ast.BooleanTerm(detect.Luhn(s)) })
	str1("switchyard.mod97", "the number spelled by the digits and A-Z (10-35) modulo 97; -1 for other characters",
		types.N, func(s string) *ast.Term { return ast.IntNumberTerm(detect.Mod97(s)) })
	str1("switchyard.entropy", "Shannon entropy in bits per character",
		types.N, func(s string) *ast.Term { return ast.FloatNumberTerm(detect.Entropy(s)) })

	rego.RegisterBuiltin2(&rego.Function{
		Name:        "switchyard.contains_any",
		Description: "whether the text contains any of the substrings",
		Decl: types.NewFunction(types.Args(types.Named("text", types.S), types.Named("substrings", types.NewArray(nil, types.S))),
			types.Named("result", types.B)),
	}, func(_ rego.BuiltinContext, a, b *ast.Term) (*ast.Term, error) {
		s, ok := a.Value.(ast.String)
		if !ok {
			return nil, fmt.Errorf("switchyard.contains_any: the text is %s, not a string", ast.ValueName(a.Value))
		}
		arr, ok := b.Value.(*ast.Array)
		if !ok {
			return nil, fmt.Errorf("switchyard.contains_any: the substrings are %s, not an array", ast.ValueName(b.Value))
		}
		var buf [32]string
		subs := buf[:0]
		err := arr.Iter(func(t *ast.Term) error {
			sub, ok := t.Value.(ast.String)
			if !ok {
				return fmt.Errorf("switchyard.contains_any: a substring is %s, not a string", ast.ValueName(t.Value))
			}
			subs = append(subs, string(sub))
			return nil
		})
		if err != nil {
			return nil, err
		}
		return ast.BooleanTerm(detect.ContainsAny(string(s), subs)), nil
	})
}
