//go:build !unix

package sim

import "net"

// connAlive cannot inspect sockets on this platform; clients count as connected.
func connAlive(net.Conn) bool { return true }
