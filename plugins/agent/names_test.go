package agent

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"switchyard/gateway/config"
)

func TestFunctionName(t *testing.T) {
	long := strings.Repeat("a", 60)
	for _, tc := range []struct {
		name, server, tool, want string
	}{
		{"plain", "github", "search_issues", "github__search_issues"},
		{"dash kept", "my-srv", "get-weather", "my-srv__get-weather"},
		{"dot and slash", "fs", "files/read.v2", "fs__files_read_v2"},
		{"unicode", "x", "météo", "x__m__t__o"},
		{"empty", "x", "", ""},
		{"exactly 64", "s", strings.Repeat("b", 61), "s__" + strings.Repeat("b", 61)},
		{"too long: cut and hashed", "srv", long, ""}, // checked below
		{"leading underscore", "a", "_x", "a___x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := FunctionName(tc.server, tc.tool)
			if tc.name == "too long: cut and hashed" {
				if len(got) != 64 || !strings.HasPrefix(got, "srv__"+strings.Repeat("a", 50)+"_") {
					t.Fatalf("FunctionName(%q, %q) = %q", tc.server, tc.tool, got)
				}
				if FunctionName(tc.server, long+"x") == got {
					t.Error("two long names that differ at the end map to the same name")
				}
				return
			}
			if got != tc.want {
				t.Errorf("FunctionName(%q, %q) = %q, want %q", tc.server, tc.tool, got, tc.want)
			}
		})
	}
}

func TestCheckArguments(t *testing.T) {
	for _, tc := range []struct {
		name, in, want, err string
	}{
		{"object", `{"city":"Paris"}`, `{"city":"Paris"}`, ""},
		{"spaces trimmed", " \n{\"a\":1}\t", `{"a":1}`, ""},
		{"empty is {}", "", `{}`, ""},
		{"blank is {}", "  ", `{}`, ""},
		{"array", `[1]`, "", "must be a JSON object, got an array"},
		{"string", `"{\"a\":1}"`, "", "must be a JSON object, got a string"},
		{"number", `42`, "", "got a number"},
		{"null", `null`, "", "got null"},
		{"bool", `true`, "", "got a boolean"},
		{"junk", `city=Paris`, "", "got something that is not JSON"},
		{"truncated", `{"city":"Par`, "", "not valid JSON"},
		{"trailing", `{"a":1} {"b":2}`, "", "not valid JSON"},
		{"too big", `{"a":"` + strings.Repeat("x", MaxArguments) + `"}`, "", "more than the"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := CheckArguments([]byte(tc.in))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("CheckArguments(%.40q) = %s, %v; want an error with %q", tc.in, got, err, tc.err)
				}
				return
			}
			if err != nil || string(got) != tc.want {
				t.Errorf("CheckArguments(%q) = %s, %v; want %s", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestTruncate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		text  string
		limit int
		cut   bool
	}{
		{"short", "hello", 1024, false},
		{"exact", strings.Repeat("x", 1024), 1024, false},
		{"long", strings.Repeat("x", 5000), 1024, true},
		{"multibyte boundary", strings.Repeat("é", 3000), 1024, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, cut := truncate([]byte(tc.text), tc.limit)
			if cut != tc.cut || len(out) > tc.limit || !utf8.Valid(out) {
				t.Fatalf("truncate(%d bytes, %d): %d bytes, cut %v, valid %v", len(tc.text), tc.limit, len(out), cut, utf8.Valid(out))
			}
			if cut && !strings.Contains(string(out), "[truncated: the tool's result was "+itoa(len(tc.text))+" bytes; the first ") {
				t.Errorf("no truncation note: %q", out[len(out)-90:])
			}
			if !cut && string(out) != tc.text {
				t.Errorf("changed: %q", out)
			}
		})
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func TestRenderContent(t *testing.T) {
	size := int64(9)
	for _, tc := range []struct {
		name string
		res  *mcp.CallToolResult
		want string
	}{
		{"texts joined", &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "a"}, &mcp.TextContent{Text: "b"}}}, "a\n\nb"},
		{"image", &mcp.CallToolResult{Content: []mcp.Content{&mcp.ImageContent{MIMEType: "image/png", Data: make([]byte, 10)}}}, "[image: image/png, 10 bytes]"},
		{"audio without type", &mcp.CallToolResult{Content: []mcp.Content{&mcp.AudioContent{Data: []byte{1}}}}, "[audio: unknown type, 1 bytes]"},
		{"link", &mcp.CallToolResult{Content: []mcp.Content{&mcp.ResourceLink{URI: "file:///a", Name: "a", Description: "the a file", Size: &size}}}, `[resource link: file:///a, "a": the a file]`},
		{"embedded text", &mcp.CallToolResult{Content: []mcp.Content{&mcp.EmbeddedResource{Resource: &mcp.ResourceContents{URI: "mem://x", Text: "body"}}}}, "[resource mem://x]\nbody"},
		{"embedded blob", &mcp.CallToolResult{Content: []mcp.Content{&mcp.EmbeddedResource{Resource: &mcp.ResourceContents{URI: "mem://y", MIMEType: "application/pdf", Blob: make([]byte, 3)}}}}, "[resource mem://y: application/pdf, 3 bytes]"},
		{"structured only", &mcp.CallToolResult{StructuredContent: map[string]any{"sum": 3}}, `{"sum":3}`},
		{"nothing", &mcp.CallToolResult{}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(renderContent(nil, tc.res)); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// FuzzFunctionName: every mapped name is a valid OpenAI function name,
// starts with its server's prefix, and is the same every time.
func FuzzFunctionName(f *testing.F) {
	for _, s := range [][2]string{{"github", "search"}, {"a", "x.y/z"}, {"s", strings.Repeat("é", 40)}, {"srv", ""}, {"a-b", "__"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, server, tool string) {
		if config.MCPServerNameProblem(server) != "" {
			return
		}
		n := FunctionName(server, tool)
		if tool == "" {
			if n != "" {
				t.Fatalf("empty tool: %q", n)
			}
			return
		}
		if !ValidFunctionName(n) {
			t.Fatalf("FunctionName(%q, %q) = %q: not a valid function name", server, tool, n)
		}
		if !strings.HasPrefix(n, server+"__") || strings.Index(n, "__") != len(server) {
			t.Fatalf("FunctionName(%q, %q) = %q: the first __ does not end the server's name", server, tool, n)
		}
		if FunctionName(server, tool) != n {
			t.Fatal("not deterministic")
		}
	})
}

// FuzzCheckArguments: accepted arguments are one JSON object, and nothing
// panics.
func FuzzCheckArguments(f *testing.F) {
	for _, s := range []string{`{"a":1}`, ``, `[]`, `{"a":`, `"x"`, `{} {}`, " {\"k\": [1, {\"n\": null}]} "} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := CheckArguments(in)
		if err != nil {
			if out != nil {
				t.Fatalf("an error with output %q", out)
			}
			return
		}
		var m map[string]any
		if err := json.Unmarshal(out, &m); err != nil || m == nil {
			t.Fatalf("accepted %q as %q, not a JSON object: %v", in, out, err)
		}
	})
}
