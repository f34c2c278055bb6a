package config

import (
	"strings"
	"testing"
	"time"
)

func TestToolsDefaults(t *testing.T) {
	c, err := Parse([]byte(`tools:
  mcp:
    - name: web
      url: https://mcp.example.com/mcp
      headers: {Authorization: "Bearer ${TOKEN:-t0ken}"}
    - name: local
      command: ./bin/server
      args: [--stdio]
      env: {API_KEY: s3cret}
      allow: ["read_*", list]
      timeout: 5s
      max_result_size: 8KiB
    - name: none
      command: srv
      allow: []
`), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	web, local, none := c.Tools.MCP[0], c.Tools.MCP[1], c.Tools.MCP[2]
	if web.Timeout.D() != 30*time.Second || web.MaxResultSize != 64<<10 || len(web.Allow) != 1 || web.Allow[0] != "*" || web.Line != 3 {
		t.Errorf("defaults: %+v", web)
	}
	if web.Headers["Authorization"].Value() != "Bearer t0ken" {
		t.Errorf("header: %q", web.Headers["Authorization"].Value())
	}
	if local.Timeout.D() != 5*time.Second || local.MaxResultSize != 8<<10 || strings.Join(local.Allow, ",") != "read_*,list" || local.Env["API_KEY"].Value() != "s3cret" {
		t.Errorf("given: %+v", local)
	}
	if none.Allow == nil || len(none.Allow) != 0 {
		t.Errorf("an empty allow list given is kept empty: %#v", none.Allow)
	}
	if c.MCPServer("local") != &c.Tools.MCP[1] || c.MCPServer("nope") != nil {
		t.Error("MCPServer lookup")
	}
	dump := redactedOf(t, c)
	if strings.Contains(dump, "s3cret") || strings.Contains(dump, "t0ken") || !strings.Contains(dump, "API_KEY: '[redacted]'") {
		t.Errorf("secrets in the dump:\n%s", dump)
	}
}

func TestToolsErrors(t *testing.T) {
	for _, tc := range []struct {
		name, servers, want string
	}{
		{"no name", "    - url: http://a/mcp\n", "t.yaml:3:7: tools.mcp[0].name: required"},
		{"bad name", "    - name: a.b\n      url: http://a/mcp\n", "tools.mcp[0].name: must be letters, digits"},
		{"double underscore", "    - name: a__b\n      url: http://a/mcp\n", `must not hold "__"`},
		{"trailing underscore", "    - name: ab_\n      url: http://a/mcp\n", `end in '_'`},
		{"long name", "    - name: " + strings.Repeat("a", 33) + "\n      url: http://a/mcp\n", "must be at most 32 bytes"},
		{"duplicate", "    - name: a\n      url: http://a/mcp\n    - name: a\n      url: http://b/mcp\n", `t.yaml:5:13: tools.mcp[1].name: duplicate MCP server name "a" (first at line 3)`},
		{"neither", "    - name: a\n", "tools.mcp[0]: needs url (a streamable HTTP endpoint) or command"},
		{"both", "    - name: a\n      url: http://a/mcp\n      command: srv\n", "tools.mcp[0].command: not allowed with url"},
		{"scheme", "    - name: a\n      url: ws://a/mcp\n", "scheme must be http or https"},
		{"query", "    - name: a\n      url: http://a/mcp?key=1\n", "send them in headers"},
		{"user", "    - name: a\n      url: http://u:p@a/mcp\n", "send them in headers"},
		{"args with url", "    - name: a\n      url: http://a/mcp\n      args: [x]\n", "tools.mcp[0].args: only with command"},
		{"env with url", "    - name: a\n      url: http://a/mcp\n      env: {A: b}\n", "tools.mcp[0].env: only with command"},
		{"headers with command", "    - name: a\n      command: srv\n      headers: {A: b}\n", "tools.mcp[0].headers: only with url"},
		{"command with args inside", "    - name: a\n      command: 'srv --stdio '\n", "give the program alone"},
		{"env name", "    - name: a\n      command: srv\n      env: {1A: b}\n", `t.yaml:5:17: tools.mcp[0].env.1A: invalid variable name "1A"`},
		{"header name", "    - name: a\n      url: http://a/mcp\n      headers: {'X Y': b}\n", "tools.mcp[0].headers.X Y: invalid header name"},
		{"header value", "    - name: a\n      url: http://a/mcp\n      headers: {X: \"a\\nb\"}\n", "must not hold CR, LF or NUL"},
		{"bad glob", "    - name: a\n      url: http://a/mcp\n      allow: ['']\n", "tools.mcp[0].allow: empty pattern"},
		{"zero timeout", "    - name: a\n      url: http://a/mcp\n      timeout: 0\n", "tools.mcp[0].timeout: must be positive"},
		{"tiny result", "    - name: a\n      url: http://a/mcp\n      max_result_size: 100\n", "tools.mcp[0].max_result_size: must be from 1KiB to 16MiB"},
		{"unknown key", "    - name: a\n      url: http://a/mcp\n      allowed: ['*']\n", `tools.mcp[0].allowed: unknown key`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte("tools:\n  mcp:\n"+tc.servers), "t.yaml")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("config:\n%s\nerror %v\nwant %q", tc.servers, err, tc.want)
			}
		})
	}
}
