package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestNginxConfigRender(t *testing.T) {
	dir := t.TempDir()
	text, err := NginxConfig{Dir: dir, Listen: "127.0.0.1:18080", Upstream: "127.0.0.1:18000", Keepalive: 64}.Render()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"worker_processes 1;",
		"pid " + filepath.Join(dir, "nginx.pid") + ";",
		"error_log " + filepath.Join(dir, "error.log") + " warn;",
		"access_log off;",
		"proxy_temp_path " + filepath.Join(dir, "proxy") + ";",
		"server 127.0.0.1:18000;",
		"keepalive 64;",
		"listen 127.0.0.1:18080;",
		"proxy_http_version 1.1;",
		`proxy_set_header Connection "";`,
		"proxy_buffering off;",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("config lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "daemon") {
		t.Error("config sets daemon; the harness passes -g 'daemon off;' and nginx rejects a duplicate")
	}

	nginx, err := exec.LookPath("nginx")
	if err != nil {
		t.Skip("nginx not installed: skipping the nginx -t parse check")
	}
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(nginx, "-t", "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", conf, "-g", "daemon off;").CombinedOutput()
	if err != nil {
		t.Fatalf("nginx -t rejected the config: %v\n%s\n%s", err, out, text)
	}
}

func TestNginxConfigRejects(t *testing.T) {
	dir := t.TempDir()
	cases := map[string]NginxConfig{
		"public listen":     {Dir: dir, Listen: "0.0.0.0:80", Upstream: "127.0.0.1:1"},
		"hostname upstream": {Dir: dir, Listen: "127.0.0.1:80", Upstream: "example.com:80"},
		"no port":           {Dir: dir, Listen: "127.0.0.1", Upstream: "127.0.0.1:1"},
		"relative dir":      {Dir: "tmp", Listen: "127.0.0.1:80", Upstream: "127.0.0.1:1"},
		"dir with syntax":   {Dir: "/tmp/a;b", Listen: "127.0.0.1:80", Upstream: "127.0.0.1:1"},
		"empty dir":         {Listen: "127.0.0.1:80", Upstream: "127.0.0.1:1"},
	}
	for name, c := range cases {
		if _, err := c.Render(); err == nil {
			t.Errorf("%s: Render accepted %+v", name, c)
		}
	}
	if _, err := (NginxConfig{Dir: dir, Listen: "[::1]:80", Upstream: "127.0.0.1:1"}).Render(); err != nil {
		t.Errorf("IPv6 loopback rejected: %v", err)
	}
}
