package gateway

import (
	"encoding/json"
	"testing"
)

func TestAcceptEncoding(t *testing.T) {
	cases := []struct {
		in   string
		want encoding
	}{
		{"", encIdentity},
		{"identity", encIdentity},
		{"gzip", encGzip},
		{"GZIP", encGzip},
		{"gzip, deflate, br", encGzip},
		{"gzip, deflate, br, zstd", encZstd},
		{"zstd;q=1.0, gzip;q=0.5", encZstd},
		{"zstd;q=0, gzip", encGzip},
		{"zstd; q=0.0, gzip;q=0", encIdentity},
		{"zstd;q=0.1", encZstd},
		{"br", encIdentity},
		{" gzip ", encGzip},
		{",,,", encIdentity},
	}
	for _, tc := range cases {
		if got := acceptEncoding([]byte(tc.in)); got != tc.want {
			t.Errorf("acceptEncoding(%q) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

func FuzzAcceptEncoding(f *testing.F) {
	for _, s := range []string{"gzip", "zstd;q=0, gzip", "gzip;q=0.5, zstd;q=0", ";;,q=0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := acceptEncoding([]byte(s))
		if got != encIdentity && got != encGzip && got != encZstd {
			t.Fatalf("acceptEncoding(%q) = %d", s, got)
		}
	})
}

func TestErrorBody(t *testing.T) {
	cases := []struct {
		e                         *Error
		typ, code, param, message string
	}{
		{&Error{Status: 400, Code: CodeInvalidRequest, Param: "model", Message: `you must provide a "model"`},
			"invalid_request_error", "invalid_request_error", "model", `you must provide a "model"`},
		{&Error{Status: 404, Code: CodeNotFound, Message: "no such model"}, "invalid_request_error", "model_not_found", "", "no such model"},
		{&Error{Status: 429, Code: CodeRateLimited, Message: "slow down"}, "rate_limit_error", "rate_limit_exceeded", "", "slow down"},
		{&Error{Status: 502, Code: CodeUpstream, Message: "calling backend a", Err: errString("refused")}, "api_error", "upstream_error", "", "calling backend a"},
	}
	for _, tc := range cases {
		b := appendErrorBody(nil, tc.e)
		var got struct {
			Error struct {
				Message string  `json:"message"`
				Type    string  `json:"type"`
				Param   *string `json:"param"`
				Code    string  `json:"code"`
			} `json:"error"`
		}
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("%s is not JSON: %v", b, err)
		}
		param := ""
		if got.Error.Param != nil {
			param = *got.Error.Param
		}
		if got.Error.Type != tc.typ || got.Error.Code != tc.code || param != tc.param || got.Error.Message != tc.message {
			t.Errorf("error body %s, want type %s code %s param %q message %q", b, tc.typ, tc.code, tc.param, tc.message)
		}
	}
}

type errString string

func (e errString) Error() string { return string(e) }
