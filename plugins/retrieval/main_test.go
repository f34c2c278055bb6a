package retrieval_test

import (
	"os"
	"testing"

	"go.uber.org/goleak"

	"switchyard/internal/testsvc"
)

// TestMain (the one of the package's tests) checks that no goroutine of
// ours outlives the tests, then stops the PostgreSQL server they started.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// fasthttp's package-level workers live for the process.
		goleak.IgnoreTopFunction("github.com/valyala/fasthttp.init.func1"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*HostClient).connsCleaner"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*TCPDialer).tcpAddrsClean"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp/stackless.funcWorker"),
		// The tests' HTTP clients (net/http, the SDKs) keep idle
		// connections to the gateways; those are the clients', not ours.
		goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"),
		goleak.Cleanup(func(code int) {
			testsvc.StopAll()
			os.Exit(code)
		}),
	)
}
