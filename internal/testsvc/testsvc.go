// Package testsvc starts real servers for tests (redis-server, PostgreSQL)
// on 127.0.0.1, from the machine's packages. A test that needs one skips
// when its binary is missing, unless SWITCHYARD_REQUIRE_SERVICES is set
// (CI sets it after installing them): then it fails.
package testsvc

import (
	"net"
	"os"
	"testing"
)

// Required reports whether missing services fail tests instead of skipping them.
func Required() bool { return os.Getenv("SWITCHYARD_REQUIRE_SERVICES") != "" }

// Missing skips t (or fails it, when services are required) for a missing service.
func Missing(t testing.TB, what string) {
	t.Helper()
	if Required() {
		t.Fatalf("%s is required (SWITCHYARD_REQUIRE_SERVICES is set) but missing", what)
	}
	t.Skipf("%s is not installed; skipping (CI installs it)", what)
}

// FreePort returns a free TCP port on 127.0.0.1.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
