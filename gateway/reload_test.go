package gateway_test

import (
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"switchyard/gateway"
)

const reloadOK, reloadFailed = "switchyard_config_last_reload_successful 1", "switchyard_config_last_reload_successful 0"

// reloadBase is the config the reload tests start from: an embedded
// simulator and an admin API with a token from the environment.
func reloadBase(watch string) string {
	return `
listen: 127.0.0.1:0
server: {watch_interval: ` + watch + `}
admin: {listen: 127.0.0.1:0, token: "${TEST_RELOAD_ADMIN_TOKEN}"}
backends:
  - {name: sim, kind: sim, sim: {model: sim-chat, profile: fast, itl: 1ms}}
models:
  - {name: sim-chat, targets: [{backend: sim}]}
`
}

// stillServing checks that the gateway answers with its first config.
func stillServing(t *testing.T, g *gw) {
	t.Helper()
	if _, body := get(t, g.url+"/v1/models"); !strings.Contains(body, `"sim-chat"`) {
		t.Errorf("the old config stopped serving: /v1/models = %s", body)
	}
	if code, _, body := post(t, g.url+"/v1/chat/completions", `{"model":"sim-chat","messages":[{"role":"user","content":"x"}],"max_tokens":2}`); code != 200 {
		t.Errorf("chat after a refused reload: %d %s", code, body)
	}
}

func metricsHas(t *testing.T, g *gw, want string) bool {
	t.Helper()
	_, m := get(t, g.url+"/metrics")
	return strings.Contains(m, want)
}

// TestReloadRefusals: a file that parses but would leave no models, or that
// changes admin settings, is refused by every reload; the old config keeps
// serving and the reload metric says the last reload failed.
func TestReloadRefusals(t *testing.T) {
	const token = "reload-s3cret"
	t.Setenv("TEST_RELOAD_ADMIN_TOKEN", token)
	base := reloadBase("0s")
	for _, tc := range []struct {
		name string
		file string
		want []string // in the error
	}{
		{"empty file", "", []string{"refused", "no models"}},
		{"comments only", "# nothing here yet\n", []string{"refused", "no models"}},
		{"truncated after backends", base[:strings.Index(base, "models:")], []string{"refused", "no models"}},
		{"empty models list", strings.Replace(base, "  - {name: sim-chat, targets: [{backend: sim}]}\n", "", 1) + "  []\n", []string{"refused", "no models"}},
		{"admin token changed", strings.Replace(base, `"${TEST_RELOAD_ADMIN_TOKEN}"`, "new-t0ken", 1), []string{"refused", "admin.token changed", "restart"}},
		{"admin token removed", strings.Replace(base, `, token: "${TEST_RELOAD_ADMIN_TOKEN}"`, ", insecure: true", 1), []string{"admin.token, admin.insecure changed"}},
		{"admin listen changed", strings.Replace(base, "admin: {listen: 127.0.0.1:0,", "admin: {listen: 127.0.0.1:1,", 1), []string{"admin.listen changed"}},
		{"admin section dropped", strings.Replace(base, `admin: {listen: 127.0.0.1:0, token: "${TEST_RELOAD_ADMIN_TOKEN}"}`, "", 1), []string{"admin.listen, admin.token changed"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := startGateway(t, base)
			if err := os.WriteFile(g.path, []byte(tc.file), 0o600); err != nil {
				t.Fatal(err)
			}
			err := g.srv.Reload()
			if err == nil {
				t.Fatalf("Reload accepted %q", tc.file)
			}
			msg := err.Error()
			for _, w := range append(tc.want, filepath.Base(g.path)) {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q lacks %q", msg, w)
				}
			}
			if strings.Contains(msg, token) || strings.Contains(msg, "new-t0ken") {
				t.Errorf("error leaks a token: %q", msg)
			}
			if !metricsHas(t, g, reloadFailed) {
				t.Errorf("metrics lack %q", reloadFailed)
			}
			stillServing(t, g)
		})
	}

	// The checks refuse only what they must: listen and server changes
	// warn and apply at restart, new models are taken.
	t.Run("other changes accepted", func(t *testing.T) {
		g := startGateway(t, base)
		next := strings.Replace(base, "watch_interval: 0s", "watch_interval: 0s, max_conns: 7", 1) +
			"  - {name: other, targets: [{backend: sim, model: sim-chat}]}\n"
		if err := os.WriteFile(g.path, []byte(next), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := g.srv.Reload(); err != nil {
			t.Fatalf("Reload: %v", err)
		}
		if _, body := get(t, g.url+"/v1/models"); !strings.Contains(body, `"other"`) {
			t.Errorf("models after reload: %s", body)
		}
		if !metricsHas(t, g, reloadOK) {
			t.Errorf("metrics lack %q", reloadOK)
		}
	})
}

// TestAdminReloadRefusedKeepsToken: POST /admin/reload of a truncated file
// is refused, and the admin token keeps working (before the fix the token
// vanished with the file and the admin API locked the operator out).
func TestAdminReloadRefusedKeepsToken(t *testing.T) {
	t.Setenv("TEST_RELOAD_ADMIN_TOKEN", "adm1n")
	base := reloadBase("0s")
	g := startGateway(t, base)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.srv.ServeAdmin(ln) }() // stopped by the gateway's Shutdown
	admin := "http://" + ln.Addr().String()
	if err := os.WriteFile(g.path, []byte(base[:strings.Index(base, "admin:")]), 0o600); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, admin+"/admin/reload", nil)
	req.Header.Set("Authorization", "Bearer adm1n")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 422 {
		t.Errorf("admin reload of a truncated file: %d, want 422", resp.StatusCode)
	}
	if code, _ := get(t, admin+"/admin/config", "Authorization", "Bearer adm1n"); code != 200 {
		t.Errorf("admin token after a refused reload: %d, want 200", code)
	}
	stillServing(t, g)
}

// TestWatcherRefusesEmptyFile: the file watcher goes through the same
// checks; after a refusal it still picks up a good file.
func TestWatcherRefusesEmptyFile(t *testing.T) {
	t.Setenv("TEST_RELOAD_ADMIN_TOKEN", "w4tch")
	base := reloadBase("10ms")
	g := startGateway(t, base)
	if err := os.WriteFile(g.path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the watcher to refuse the empty file", 5*time.Second, func() bool { return metricsHas(t, g, reloadFailed) })
	stillServing(t, g)
	next := base + "  - {name: second, targets: [{backend: sim, model: sim-chat}]}\n"
	if err := os.WriteFile(g.path, []byte(next), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the watcher to load the good file", 5*time.Second, func() bool {
		_, body := get(t, g.url+"/v1/models")
		return strings.Contains(body, `"second"`)
	})
	if !metricsHas(t, g, reloadOK) {
		t.Errorf("metrics lack %q", reloadOK)
	}
}

// TestStartRefusesNoModels: a config without models is refused at start,
// as on reload: the gateway would answer every request 404.
func TestStartRefusesNoModels(t *testing.T) {
	path := filepath.Join(t.TempDir(), "empty.yaml")
	if err := os.WriteFile(path, []byte("# nothing yet\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := gateway.New(gateway.Options{ConfigPath: path, Registry: gateway.NewRegistry()})
	if err == nil || !strings.Contains(err.Error(), "no models") {
		t.Fatalf("New on an empty config: %v, want a refusal naming the missing models", err)
	}
}
