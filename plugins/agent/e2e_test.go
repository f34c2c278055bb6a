package agent_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"switchyard/internal/gwtest"
	"switchyard/plugins/agent"
)

// get fetches url with the admin token and returns the body.
func get(t *testing.T, url string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer adm")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return string(b)
}

// TestGateway runs the registry in a real gateway with the demo server
// over HTTP: /admin/tools, calls, metrics, and a reload that keeps the
// session while the allow list changes.
func TestGateway(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	demo := agent.DemoServer()
	hs := &http.Server{Handler: mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return demo }, nil)}
	served := make(chan struct{})
	go func() { defer close(served); _ = hs.Serve(ln) }()
	defer func() {
		_ = hs.Close()
		<-served
		for ss := range demo.Sessions() {
			_ = ss.Close()
		}
	}()
	cfg := func(allow string) string {
		return `admin: {listen: "127.0.0.1:0", token: adm}
backends: [{name: sim, kind: sim, sim: {model: sim-chat}}]
models: [{name: sim-chat, targets: [{backend: sim}]}]
tools:
  mcp:
    - name: demo
      url: http://` + ln.Addr().String() + `/
      allow: [` + allow + `]
      headers: {Authorization: Bearer s3cret}
`
	}
	g := gwtest.Start(t, cfg("get_weather, add"))
	r, _ := g.Srv.Current().Service(agent.ServiceName).(*agent.Registry)
	if r == nil {
		t.Fatal("no tool registry in the gateway")
	}
	var st struct {
		Servers []agent.ServerStatus `json:"servers"`
		Tools   []json.RawMessage    `json:"tools"`
	}
	if err := json.Unmarshal([]byte(get(t, g.Admin+"/admin/tools")), &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Servers) != 1 || !st.Servers[0].Up || strings.Join(st.Servers[0].Offered, ",") != "demo__add,demo__get_weather" || len(st.Tools) != 2 {
		t.Fatalf("/admin/tools: %+v", st)
	}
	var fn bytes.Buffer
	if err := json.Compact(&fn, st.Tools[1]); err != nil || !strings.HasPrefix(fn.String(), `{"type":"function","function":{"name":"demo__get_weather","description":"Current weather`) ||
		!strings.Contains(fn.String(), `"required":["city"]`) {
		t.Errorf("the function tool: %s", fn.String())
	}
	if dump := get(t, g.Admin+"/admin/config"); strings.Contains(dump, "s3cret") || !strings.Contains(dump, "Authorization: '[redacted]'") {
		t.Errorf("the header's secret in the config dump:\n%s", dump)
	}

	res, err := r.Call(context.Background(), "demo__get_weather", []byte(`{"city":"Paris"}`))
	if err != nil || !strings.HasPrefix(res.Text, "Weather in Paris: ") {
		t.Fatalf("get_weather: %+v %v", res, err)
	}
	again, _ := r.Call(context.Background(), "demo__get_weather", []byte(`{"city":"paris"}`))
	if strings.TrimPrefix(again.Text, "Weather in paris") != strings.TrimPrefix(res.Text, "Weather in Paris") {
		t.Errorf("not deterministic: %q then %q", res.Text, again.Text)
	}
	if _, err := r.Call(context.Background(), "demo__lookup_order", []byte(`{"order_id":"A-1"}`)); err == nil {
		t.Error("a tool outside allow was called")
	}

	// A reload with a wider allow keeps the session.
	if err := os.WriteFile(g.Path, []byte(cfg("'*'")), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := g.Srv.Reload(); err != nil {
		t.Fatal(err)
	}
	r2, _ := g.Srv.Current().Service(agent.ServiceName).(*agent.Registry)
	if r2 == r {
		t.Fatal("the reload kept the generation")
	}
	res, err = r2.Call(context.Background(), "demo__lookup_order", []byte(`{"order_id":"bad id!"}`))
	if err != nil || !res.IsError || !strings.Contains(res.Text, `no order "bad id!"`) {
		t.Errorf("lookup_order of a bad id: %+v %v", res, err)
	}
	res, err = r2.Call(context.Background(), "demo__add", []byte(`{"a":2,"b":40.5}`))
	if err != nil || res.Text != "2 + 40.5 = 42.5" {
		t.Errorf("add: %+v %v", res, err)
	}
	metrics := get(t, g.Admin+"/metrics")
	for _, want := range []string{
		`switchyard_mcp_server_up{server="demo"} 1`,
		`switchyard_mcp_server_connects_total{server="demo"} 1`, // one session across the reload
		`switchyard_mcp_tool_calls_total{server="demo",tool="demo__get_weather",result="ok"} 2`,
		`switchyard_mcp_tool_calls_total{server="demo",tool="demo__lookup_order",result="tool_error"} 1`,
		`switchyard_mcp_tool_calls_total{server="",tool="",result="unknown_tool"} 1`, // the tool outside allow
		`switchyard_mcp_tool_call_duration_seconds_count{server="demo"} 4`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if t.Failed() {
		t.Logf("metrics:\n%s", grep(metrics, "switchyard_mcp_"))
	}
}

func grep(s, sub string) string {
	var out []string
	for l := range strings.SplitSeq(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
