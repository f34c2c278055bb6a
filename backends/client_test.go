package backends

import (
	"bufio"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// rawServer accepts connections on 127.0.0.1 and hands each to handle.
func rawServer(t *testing.T, handle func(c net.Conn)) (string, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() { defer c.Close(); handle(c) }()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return "http://" + ln.Addr().String(), &conns
}

// readRequest reads one request head and body from br.
func readRequest(br *bufio.Reader) error {
	var req fasthttp.Request
	return req.Read(br)
}

const okResp = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"

func newClient(t *testing.T, url string, o Options) *Client {
	t.Helper()
	o.Name, o.URL = "test", url
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func call(c *Client, k *Call) (*fasthttp.Response, error) {
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	c.PrepareRequest(req, "POST", "/v1/chat/completions")
	req.SetBodyString(`{"model":"m"}`)
	resp := &fasthttp.Response{}
	return resp, c.Do(k, req, resp)
}

func TestReusesConnections(t *testing.T) {
	url, conns := rawServer(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for readRequest(br) == nil {
			io.WriteString(c, okResp)
		}
	})
	c := newClient(t, url, Options{})
	for i := 0; i < 5; i++ {
		var k Call
		if resp, err := call(c, &k); err != nil || resp.StatusCode() != 200 {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("5 sequential calls used %d connections, want 1", n)
	}
}

func TestReplacesStaleConnection(t *testing.T) {
	// The server answers one request per connection, then closes it
	// without saying so, as an idle timeout would.
	url, conns := rawServer(t, func(c net.Conn) {
		if readRequest(bufio.NewReader(c)) == nil {
			io.WriteString(c, okResp)
		}
	})
	c := newClient(t, url, Options{})
	for i := 0; i < 3; i++ {
		var k Call
		if _, err := call(c, &k); err != nil {
			t.Fatalf("call %d on a server that drops idle connections: %v", i, err)
		}
	}
	if n := conns.Load(); n != 3 {
		t.Errorf("%d connections, want 3", n)
	}
}

func TestErrors(t *testing.T) {
	stall, _ := rawServer(t, func(c net.Conn) {
		readRequest(bufio.NewReader(c))
		time.Sleep(2 * time.Second)
	})
	ln, _ := net.Listen("tcp4", "127.0.0.1:0")
	refused := "http://" + ln.Addr().String()
	ln.Close()

	t.Run("connection refused", func(t *testing.T) {
		var k Call
		_, err := call(newClient(t, refused, Options{}), &k)
		if !errors.Is(err, ErrConnect) {
			t.Errorf("err = %v, want ErrConnect", err)
		}
	})
	t.Run("first byte timeout", func(t *testing.T) {
		var k Call
		start := time.Now()
		_, err := call(newClient(t, stall, Options{FirstByte: 100 * time.Millisecond}), &k)
		if !errors.Is(err, ErrFirstByteTimeout) || time.Since(start) > time.Second {
			t.Errorf("err = %v after %v, want ErrFirstByteTimeout after about 100ms", err, time.Since(start))
		}
	})
	t.Run("total timeout", func(t *testing.T) {
		var k Call
		_, err := call(newClient(t, stall, Options{Total: 100 * time.Millisecond}), &k)
		if !errors.Is(err, ErrTotalTimeout) {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("cancel while waiting", func(t *testing.T) {
		var k Call
		time.AfterFunc(50*time.Millisecond, k.Cancel)
		start := time.Now()
		_, err := call(newClient(t, stall, Options{}), &k)
		if !errors.Is(err, ErrCanceled) || time.Since(start) > time.Second {
			t.Errorf("err = %v after %v, want ErrCanceled at once", err, time.Since(start))
		}
	})
	t.Run("max conns", func(t *testing.T) {
		c := newClient(t, stall, Options{MaxConns: 1, FirstByte: 300 * time.Millisecond})
		first := make(chan error, 1)
		var k1 Call
		go func() { _, err := call(c, &k1); first <- err }()
		// Wait until the first call holds the only connection.
		for deadline := time.Now().Add(2 * time.Second); ; {
			c.pool.mu.Lock()
			open := c.pool.open
			c.pool.mu.Unlock()
			if open == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("first call never opened a connection")
			}
			time.Sleep(time.Millisecond)
		}
		var k2 Call
		if _, err := call(c, &k2); !errors.Is(err, ErrNoFreeConns) {
			t.Errorf("second call: %v, want ErrNoFreeConns", err)
		}
		k1.Cancel()
		<-first
	})
}

func TestStream(t *testing.T) {
	// Two events 30 ms apart, then a stall.
	url, _ := rawServer(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for readRequest(br) == nil {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
			io.WriteString(c, "b\r\ndata: one\n\n\r\n")
			time.Sleep(30 * time.Millisecond)
			io.WriteString(c, "b\r\ndata: two\n\n\r\n")
			time.Sleep(500 * time.Millisecond)
			io.WriteString(c, "0\r\n\r\n")
		}
	})
	stream := func(c *Client, k *Call) (string, error) {
		req := fasthttp.AcquireRequest()
		defer fasthttp.ReleaseRequest(req)
		c.PrepareRequest(req, "POST", "/v1/chat/completions")
		resp := &fasthttp.Response{}
		s, err := c.DoStream(k, req, resp)
		if err != nil {
			return "", err
		}
		defer s.Close()
		var got []byte
		buf := make([]byte, 64)
		for {
			n, err := s.Read(buf)
			got = append(got, buf[:n]...)
			s.Extend(time.Now())
			if err == io.EOF {
				return string(got), nil
			}
			if err != nil {
				return string(got), err
			}
		}
	}
	t.Run("complete", func(t *testing.T) {
		var k Call
		got, err := stream(newClient(t, url, Options{Idle: 2 * time.Second}), &k)
		if err != nil || got != "data: one\n\ndata: two\n\n" {
			t.Errorf("stream = %q, %v", got, err)
		}
	})
	t.Run("idle timeout", func(t *testing.T) {
		var k Call
		got, err := stream(newClient(t, url, Options{Idle: 200 * time.Millisecond}), &k)
		if err == nil || got != "data: one\n\ndata: two\n\n" {
			t.Errorf("a 500ms gap under a 200ms idle timeout: %q, %v", got, err)
		}
	})
	t.Run("cancel mid-stream", func(t *testing.T) {
		var k Call
		time.AfterFunc(100*time.Millisecond, k.Cancel)
		_, err := stream(newClient(t, url, Options{Idle: 2 * time.Second}), &k)
		if !errors.Is(err, ErrCanceled) {
			t.Errorf("err = %v, want ErrCanceled", err)
		}
	})
}

// TestZeroMeansNone: zero limits and timeouts in Options mean none; the
// defaults belong to the gateway's config.
func TestZeroMeansNone(t *testing.T) {
	slow := func(delay time.Duration) string {
		url, _ := rawServer(t, func(c net.Conn) {
			br := bufio.NewReader(c)
			for readRequest(br) == nil {
				time.Sleep(delay)
				if _, err := io.WriteString(c, okResp); err != nil {
					return
				}
			}
		})
		return url
	}
	tests := []struct {
		name    string
		delay   time.Duration
		opts    Options
		timeout bool
	}{
		{"first_byte 0 and total 0: no bound", 300 * time.Millisecond, Options{}, false},
		{"first_byte 0: total still bounds", 600 * time.Millisecond, Options{Total: 150 * time.Millisecond}, true},
		{"first_byte 0 under a longer total", 300 * time.Millisecond, Options{Total: 2 * time.Second}, false},
		{"first_byte set, total 0", 600 * time.Millisecond, Options{FirstByte: 150 * time.Millisecond}, true},
		{"connect 0: no dial bound", 0, Options{ConnectTimeout: 0, FirstByte: time.Second}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newClient(t, slow(tc.delay), tc.opts)
			var k Call
			start := time.Now()
			resp, err := call(c, &k)
			took := time.Since(start)
			if tc.timeout {
				want := ErrFirstByteTimeout
				if tc.opts.FirstByte == 0 {
					want = ErrTotalTimeout
				}
				if !errors.Is(err, want) || took > tc.delay {
					t.Fatalf("err = %v after %v; want %v before the %v answer", err, took, want, tc.delay)
				}
				return
			}
			if err != nil || resp.StatusCode() != 200 {
				t.Fatalf("err = %v after %v; want the answer after %v", err, took, tc.delay)
			}
		})
	}
	t.Run("max_conns 0: no cap", func(t *testing.T) {
		stall, _ := rawServer(t, func(c net.Conn) {
			readRequest(bufio.NewReader(c))
			time.Sleep(2 * time.Second)
		})
		c := newClient(t, stall, Options{FirstByte: 3 * time.Second})
		const n = 4
		calls := make([]Call, n)
		errs := make(chan error, n)
		for i := range n {
			go func() { _, err := call(c, &calls[i]); errs <- err }()
		}
		for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(time.Millisecond) {
			c.pool.mu.Lock()
			open := c.pool.open
			c.pool.mu.Unlock()
			if open == n {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d connections open; want %d with no cap", open, n)
			}
		}
		for i := range calls {
			calls[i].Cancel()
		}
		for range n {
			if err := <-errs; errors.Is(err, ErrNoFreeConns) {
				t.Errorf("a call found no free connection with max_conns 0: %v", err)
			}
		}
	})
}
