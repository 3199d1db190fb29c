package faultproxy

import (
	"bufio"
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

// echo serves lines back, each once.
func echo(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					c.Write([]byte(line))
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// roundTrip sends a line on c and reads it back within wait.
func roundTrip(c net.Conn, r *bufio.Reader, wait time.Duration) error {
	c.SetDeadline(time.Now().Add(wait))
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return err
	}
	line, err := r.ReadString('\n')
	if err == nil && line != "ping\n" {
		return errors.New("echoed " + line)
	}
	return err
}

func TestModes(t *testing.T) {
	p := Start(t, echo(t))
	dial := func() (net.Conn, *bufio.Reader) {
		t.Helper()
		c, err := net.Dial("tcp", p.Addr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c, bufio.NewReader(c)
	}
	c, r := dial()
	if err := roundTrip(c, r, 10*time.Second); err != nil {
		t.Fatalf("passing: %v", err)
	}

	p.SetLatency(200 * time.Millisecond)
	start := time.Now()
	if err := roundTrip(c, r, 10*time.Second); err != nil || time.Since(start) < 400*time.Millisecond {
		t.Errorf("with 200ms each way: %v after %v", err, time.Since(start))
	}
	p.SetLatency(0)

	p.Reset()
	if err := roundTrip(c, r, 10*time.Second); err == nil {
		t.Error("a reset connection still works")
	}
	c, r = dial()
	if err := roundTrip(c, r, 10*time.Second); err != nil {
		t.Fatalf("a new connection after a reset: %v", err)
	}

	p.SetMode(HalfOpen)
	fresh, freshR := dial() // accepted, held
	if err := roundTrip(c, r, 300*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("half-open: %v, want no answer", err)
	}
	p.SetMode(Pass)
	// What waited passes: the line sent while half-open comes back, and the
	// connection opened meanwhile reaches the server.
	if line, err := r.ReadString('\n'); err != nil || line != "ping\n" {
		t.Errorf("after half-open: %q, %v", line, err)
	}
	if err := roundTrip(fresh, freshR, 10*time.Second); err != nil {
		t.Errorf("a connection opened while half-open: %v", err)
	}

	p.SetMode(Down)
	if err := roundTrip(c, r, 10*time.Second); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("down, an open connection: %v, want a reset", err)
	}
	// A new connection is reset at once: while connecting, or at its first read.
	if c, err := net.Dial("tcp", p.Addr()); err == nil {
		err = roundTrip(c, bufio.NewReader(c), 10*time.Second)
		c.Close()
		if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("down, a new connection: %v, want a reset", err)
		}
	}
	p.SetMode(Pass)
	c, r = dial()
	if err := roundTrip(c, r, 10*time.Second); err != nil {
		t.Errorf("up again: %v", err)
	}
}
