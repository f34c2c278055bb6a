package loadtest

import (
	"flag"
	"io"
	"strings"
	"testing"
	"time"
)

func TestRegisterFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		args    []string
		check   func(t *testing.T, c Config)
		wantErr string
	}{
		{"defaults", []string{"--model", "m", "--duration", "5s"}, func(t *testing.T, c Config) {
			if c.Mode != ModeOpen || c.Rate != 10 || c.Scenario != ScenarioChat || c.PromptTokens != Fixed(128) || c.OutputTokens != Fixed(64) || c.Timeout != time.Minute {
				t.Errorf("defaults: %+v", c)
			}
			if err := c.Validate(); err != nil {
				t.Errorf("defaults do not validate: %v", err)
			}
		}, ""},
		{"everything", []string{
			"--url", "http://h:1/v1", "--model", "m", "--embed-model", "e", "--api-key", "k1", "--api-key=k2",
			"--mode", "closed", "--concurrency", "8", "--requests", "100", "--warmup", "1s",
			"--mix", "chat=0.5,stream=0.3,embeddings=0.2", "--prompt-tokens", "uniform:50-200", "--output-tokens", "normal:100,20",
			"--shared-prefix-ratio", "0.5", "--repeat-ratio", "0.2", "--header", "X-Team: blue", "--header", "x-a:b",
		}, func(t *testing.T, c Config) {
			if c.Scenario != ScenarioMix || c.Mix["stream"] != 0.3 || len(c.APIKeys) != 2 || c.APIKeys[1] != "k2" ||
				c.PromptTokens != (Dist{"uniform", 50, 200}) || c.OutputTokens != (Dist{"normal", 100, 20}) ||
				c.Headers["X-Team"] != "blue" || c.Headers["x-a"] != "b" || c.Concurrency != 8 || c.Warmup != time.Second {
				t.Errorf("parsed: %+v", c)
			}
			if err := c.Validate(); err != nil {
				t.Errorf("does not validate: %v", err)
			}
		}, ""},
		{"tenants", []string{"--model", "m", "--duration", "5s", "--scenario", "stream",
			"--prefix-tenants", "16", "--prefix-tokens", "3000", "--prefix-users", "5", "--prefix-skew", "0.8"}, func(t *testing.T, c Config) {
			if c.PrefixTenants != 16 || c.PrefixTokens != 3000 || c.PrefixUsers != 5 || c.PrefixSkew != 0.8 {
				t.Errorf("parsed: %+v", c)
			}
			if err := c.Validate(); err != nil {
				t.Errorf("does not validate: %v", err)
			}
		}, ""},
		{"bad dist", []string{"--prompt-tokens", "zipf:1"}, nil, "--prompt-tokens"},
		{"bad mix", []string{"--mix", "video=1"}, nil, "--mix"},
		{"bad header", []string{"--header", "novalue"}, nil, "--header"},
		{"mix with other scenario", []string{"--scenario", "stream", "--mix", "chat=1"}, nil, "--mix needs --scenario mix"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := flag.NewFlagSet("load", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			build := RegisterFlags(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			c, err := build()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
		})
	}
}
