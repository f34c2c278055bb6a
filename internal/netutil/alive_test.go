package netutil

import (
	"net"
	"runtime"
	"testing"
	"time"
)

func TestAlive(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	if !Alive(server) {
		t.Fatal("an open connection counts as gone")
	}
	// Unread data from the client (a pipelined request) is not a close.
	client.Write([]byte("GET / HTTP/1.1\r\n"))
	if !Alive(server) {
		t.Fatal("a connection with unread data counts as gone")
	}
	buf := make([]byte, 16)
	if _, err := server.Read(buf); err != nil {
		t.Fatal(err)
	}
	client.Close()
	if runtime.GOOS == "windows" || runtime.GOOS == "plan9" {
		t.Skip("no socket peeking here")
	}
	// The FIN arrives asynchronously; poll for it.
	deadline := time.Now().Add(2 * time.Second)
	for Alive(server) {
		if time.Now().After(deadline) {
			t.Fatal("a closed connection still counts as alive")
		}
		time.Sleep(time.Millisecond)
	}
}
