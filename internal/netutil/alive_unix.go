//go:build unix

package netutil

import (
	"errors"
	"net"
	"syscall"
)

// Alive reports whether the peer of c is still connected, by peeking at
// the socket without blocking: a zero-byte read means the client closed.
// Anything it cannot inspect counts as alive.
func Alive(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	alive := true
	_ = rc.Read(func(fd uintptr) bool {
		var b [1]byte
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case err == nil && n == 0:
			alive = false
		case err != nil && !errors.Is(err, syscall.EAGAIN) && !errors.Is(err, syscall.EINTR):
			alive = false
		}
		return true
	})
	return alive
}
