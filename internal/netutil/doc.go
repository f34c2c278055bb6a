// Package netutil holds small network helpers shared by the gateway and the
// simulator.
package netutil
