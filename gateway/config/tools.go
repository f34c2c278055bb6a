package config

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"switchyard/internal/httpname"
)

// Tools is the tool registry (docs/agent.md): the MCP servers whose tools
// the agent stage and the /mcp endpoint offer, under prefixed names.
type Tools struct {
	// MCP lists the MCP servers, each reached over streamable HTTP (url)
	// or stdio (a command the gateway starts and owns). Their tools are
	// named "<server>__<tool>".
	MCP []MCPServer `yaml:"mcp,omitempty"`
}

// MCPServer is one MCP server of the tool registry. The gateway connects
// once and keeps the session across reloads that leave the keys that
// shape it (name, url, command, args, env, headers) unchanged; allow,
// timeout and max_result_size apply at once without reconnecting.
type MCPServer struct {
	// Name prefixes the server's tools ("<name>__<tool>"), and names it
	// in logs and metrics. Required and unique; 1 to 32 letters, digits,
	// '-' and '_', without "__" and not ending in '_', so that a prefixed
	// name splits one way only.
	Name string `yaml:"name"`
	// URL is the server's streamable HTTP endpoint, http or https (e.g.
	// "http://127.0.0.1:8931/mcp"). Exactly one of url and command.
	// Credentials go in headers, not in the URL.
	URL string `yaml:"url,omitempty"`
	// Command starts the server as a child process speaking MCP over its
	// stdin and stdout (stdio): a program found in PATH, or a path
	// (relative to the config file's directory). It runs in that
	// directory, its stderr goes to the gateway's log, and it is stopped
	// when no config uses it any more. Exactly one of url and command.
	Command string `yaml:"command,omitempty"`
	// Args are the command's arguments; command only.
	Args []string `yaml:"args,omitempty"`
	// Env is the command's environment, added to a minimal one (HOME,
	// LOGNAME, PATH, SHELL, TERM, USER, LANG, TMPDIR of the gateway's):
	// the gateway's other variables are not passed on. Values are secrets
	// (redacted in dumps); command only.
	Env map[string]Secret `yaml:"env,omitempty"`
	// Headers are sent with every HTTP request to the server (an
	// Authorization header, say). Values are secrets (redacted in
	// dumps); url only.
	Headers map[string]Secret `yaml:"headers,omitempty"`
	// Allow are globs on the server's tool names (as the server names
	// them): only matching tools are offered. Default ["*"], all of them;
	// an empty list offers none.
	Allow StringList `yaml:"allow,omitempty"`
	// Timeout bounds each tool call. Default "30s"; must be positive.
	Timeout Duration `yaml:"timeout,omitempty"`
	// MaxResultSize bounds the text of a tool's result given to the
	// model; a longer one is cut, with a note saying so. Default "64KiB";
	// 1KiB to 16MiB.
	MaxResultSize Size `yaml:"max_result_size,omitempty"`

	// Line is the server's line in the file (0 when unknown).
	Line int `yaml:"-"`
}

// Tool registry defaults and bounds.
const (
	DefaultToolTimeout       = Duration(30 * time.Second)
	DefaultToolResultSize    = Size(64 << 10)
	MinToolResultSize        = Size(1 << 10)
	MaxToolResultSize        = Size(16 << 20)
	MaxMCPServerNameBytes    = 32
	ToolNameSeparator        = "__" // between the server's name and the tool's
	mcpServersPath           = "tools.mcp"
	defaultToolAllowAll      = "*"
	maxMCPServerArgs         = 256
	maxMCPServerEnvOrHeaders = 256
)

// MCPServer returns the MCP server named name, or nil.
func (c *Config) MCPServer(name string) *MCPServer {
	for i := range c.Tools.MCP {
		if c.Tools.MCP[i].Name == name {
			return &c.Tools.MCP[i]
		}
	}
	return nil
}

func (c *Config) toolDefaults() {
	for i := range c.Tools.MCP {
		s := &c.Tools.MCP[i]
		p := indexPath(mcpServersPath, i)
		if !c.given(p+".allow", s.Allow == nil) {
			s.Allow = StringList{defaultToolAllowAll}
		}
		c.defDur(p+".timeout", &s.Timeout, DefaultToolTimeout)
		c.defSize(p+".max_result_size", &s.MaxResultSize, DefaultToolResultSize)
	}
}

// tools checks the tool registry's servers.
func (v *validator) tools() {
	seen := map[string]string{}
	for i := range v.c.Tools.MCP {
		s := &v.c.Tools.MCP[i]
		p := indexPath(mcpServersPath, i)
		if prev, dup := seen[s.Name]; dup {
			v.add(p+".name", "duplicate MCP server name %q%s", s.Name, v.lineOf(prev))
		} else if msg := MCPServerNameProblem(s.Name); msg != "" {
			v.add(p+".name", "%s", msg)
		} else {
			seen[s.Name] = p + ".name"
		}
		switch {
		case s.URL == "" && s.Command == "":
			v.add(p, "needs url (a streamable HTTP endpoint) or command (a stdio server)")
		case s.URL != "" && s.Command != "":
			v.add(p+".command", "not allowed with url: a server is reached over HTTP (url) or started over stdio (command), not both")
		case s.URL != "":
			if err := checkMCPURL(s.URL); err != nil {
				v.add(p+".url", "%v", err)
			}
			if len(s.Args) > 0 {
				v.add(p+".args", "only with command")
			}
			if len(s.Env) > 0 {
				v.add(p+".env", "only with command")
			}
		default:
			if strings.TrimSpace(s.Command) != s.Command || strings.ContainsAny(s.Command, "\x00\n\r") {
				v.add(p+".command", "invalid command %q: give the program alone, its arguments in args", s.Command)
			}
			if len(s.Headers) > 0 {
				v.add(p+".headers", "only with url")
			}
		}
		if len(s.Args) > maxMCPServerArgs {
			v.add(p+".args", "at most %d arguments, got %d", maxMCPServerArgs, len(s.Args))
		}
		for j, a := range s.Args {
			if strings.IndexByte(a, 0) >= 0 {
				v.add(indexPath(p+".args", j), "must not hold a NUL byte")
			}
		}
		if len(s.Env) > maxMCPServerEnvOrHeaders {
			v.add(p+".env", "at most %d variables, got %d", maxMCPServerEnvOrHeaders, len(s.Env))
		}
		for k, val := range s.Env {
			if !envName(k) {
				v.add(p+".env."+k, "invalid variable name %q: letters, digits and '_', not starting with a digit", k)
			} else if strings.IndexByte(val.Value(), 0) >= 0 {
				v.add(p+".env."+k, "must not hold a NUL byte")
			}
		}
		if len(s.Headers) > maxMCPServerEnvOrHeaders {
			v.add(p+".headers", "at most %d headers, got %d", maxMCPServerEnvOrHeaders, len(s.Headers))
		}
		for k, val := range s.Headers {
			if err := httpname.Check(k); err != nil {
				v.add(p+".headers."+k, "%v", err)
			} else if strings.ContainsAny(val.Value(), "\r\n\x00") {
				v.add(p+".headers."+k, "must not hold CR, LF or NUL")
			}
		}
		v.globs(p+".allow", s.Allow)
		v.positiveDur(p+".timeout", s.Timeout)
		if s.MaxResultSize < MinToolResultSize || s.MaxResultSize > MaxToolResultSize {
			v.add(p+".max_result_size", "must be from 1KiB to 16MiB, got %d bytes", int64(s.MaxResultSize))
		}
	}
}

// MCPServerNameProblem says what is wrong with an MCP server's name, or
// "" when it is usable as a tool-name prefix.
func MCPServerNameProblem(n string) string {
	if n == "" {
		return "required: the server's name, which prefixes its tools"
	}
	if len(n) > MaxMCPServerNameBytes {
		return fmt.Sprintf("must be at most %d bytes, got %d", MaxMCPServerNameBytes, len(n))
	}
	for i := 0; i < len(n); i++ {
		b := n[i]
		if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '-' || b == '_') {
			return "must be letters, digits, '-' and '_' (it prefixes OpenAI function names); got " + strconv.Quote(n)
		}
	}
	if strings.Contains(n, ToolNameSeparator) || strings.HasSuffix(n, "_") {
		return "must not hold \"__\" or end in '_' (\"__\" separates it from the tool's name); got " + strconv.Quote(n)
	}
	return ""
}

// checkMCPURL checks an MCP server's endpoint.
func checkMCPURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("invalid URL %q: %v", s, errors.Unwrap(err))
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("invalid URL %q: scheme must be http or https (streamable HTTP)", s)
	}
	if u.Host == "" {
		return fmt.Errorf("invalid URL %q: no host", s)
	}
	if u.User != nil || u.RawQuery != "" {
		return fmt.Errorf("invalid URL %q: no credentials or query in the URL (it is shown in dumps); send them in headers", s)
	}
	if u.Fragment != "" {
		return fmt.Errorf("invalid URL %q: no fragment", s)
	}
	if port := u.Port(); port != "" {
		if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			return fmt.Errorf("invalid URL %q: bad port %q", s, port)
		}
	}
	return nil
}

// envName says whether k is a usable environment variable name.
func envName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		b := k[i]
		if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b == '_' || i > 0 && b >= '0' && b <= '9') {
			return false
		}
	}
	return true
}
