// Package leaktest holds the goroutines that tests of packages running a
// gateway let outlive them: fasthttp's package-level workers, which live
// for the process, and the idle connections of the tests' own net/http
// clients. Everything else still running at the end of a test binary is a
// leak of ours (goleak.VerifyTestMain(m, leaktest.Options()...)).
package leaktest

import "go.uber.org/goleak"

// Options are goleak's ignores for them, with extra appended.
func Options(extra ...goleak.Option) []goleak.Option {
	return append([]goleak.Option{
		goleak.IgnoreTopFunction("github.com/valyala/fasthttp.init.func1"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*HostClient).connsCleaner"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*TCPDialer).tcpAddrsClean"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp/stackless.funcWorker"),
		goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"),
	}, extra...)
}
