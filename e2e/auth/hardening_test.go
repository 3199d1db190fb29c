package authe2e

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// What an attacker tries against a registry with authentication on: bursts of
// guesses, slow bodies, memory, timing, odd scopes, forged signatures, forged headers.

// TestParallelGuessesLimited: guesses sent all at once are checked no more often than
// the limit allows, whichever endpoint takes them (Basic on the API, the token
// endpoint's GET and its password grant), and the right password works again once the
// window is over.
func TestParallelGuessesLimited(t *testing.T) {
	const limit, guesses = 5, 60
	r := startRegistry(t, "  login-failures: 5\n  login-window: 15s\n")
	var wg sync.WaitGroup
	statuses := make([]int, guesses)
	start := make(chan struct{})
	for i := range guesses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			password := "guess-" + itoa(i)
			switch i % 3 {
			case 0:
				statuses[i] = doURL(t, httpClient, http.MethodGet, r.srv.URL+"/v2/", basic("dev", password), nil).Status
			case 1:
				statuses[i] = doURL(t, httpClient, http.MethodGet, r.srv.URL+"/auth/token?service=graft", basic("dev", password), nil).Status
			default:
				form := url.Values{"grant_type": {"password"}, "username": {"dev"}, "password": {password}, "service": {"graft"}}
				statuses[i] = doURL(t, httpClient, http.MethodPost, r.srv.URL+"/auth/token", "", []byte(form.Encode()),
					"Content-Type", "application/x-www-form-urlencoded").Status
			}
		}()
	}
	close(start)
	wg.Wait()
	count := map[int]int{}
	for _, s := range statuses {
		count[s]++
	}
	if count[401] < 1 || count[401] > limit || count[401]+count[429] != guesses {
		t.Fatalf("%d parallel wrong passwords with login-failures %d: %v (status: how many); want at most %d checked (401), the rest refused (429)",
			guesses, limit, count, limit)
	}
	if resp := r.do(http.MethodGet, "/v2/", as("dev"), nil); resp.Status != 429 {
		t.Errorf("the right password in the spent window: %s", resp)
	}
	// the window is 15 s: a minute past it, the right password must long have worked
	deadline := time.Now().Add(75 * time.Second)
	for {
		resp := r.do(http.MethodGet, "/v2/", as("dev"), nil)
		if resp.Status == 200 {
			break
		}
		if resp.Status != 429 || time.Now().After(deadline) {
			t.Fatalf("the right password after the window: %s", resp)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// rawRequest sends a request's head, and whatever of its body the test writes next,
// on a connection of its own.
func rawRequest(t *testing.T, addr, method, target, authz string, contentLength int) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	head := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n",
		method, target, addr, contentLength)
	if authz != "" {
		head += "Authorization: " + authz + "\r\n"
	}
	if _, err := io.WriteString(conn, head+"\r\n"); err != nil {
		t.Fatal(err)
	}
	return conn
}

// trickle writes a byte a second to conn until a write fails or stop closes.
func trickle(conn net.Conn, stop <-chan struct{}) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		if _, err := conn.Write([]byte{'x'}); err != nil {
			return
		}
		select {
		case <-stop:
			return
		case <-tick.C:
		}
	}
}

// answerAndClose reads the answer on conn and then waits for the server to close the
// connection. The bound is generous: it only tells an answer from none.
func answerAndClose(t *testing.T, conn net.Conn, what string) *http.Response {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(90 * time.Second))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("%s: no answer: %v", what, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if _, err := br.ReadByte(); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("%s: answered %d, but the connection stayed open (%v)", what, resp.StatusCode, err)
	}
	return resp
}

// TestSlowBodies: a body that arrives a byte a second holds no connection: a
// request the server refuses is answered at once, without its body, and its
// connection closed; one it accepts is cut off when its body falls below the minimum
// rate. A body that keeps up goes through, however many windows it takes.
func TestSlowBodies(t *testing.T) {
	r := startRegistry(t, "", "--limits-body-window", "3s", "--limits-body-min-bytes", "1024")
	loc := r.do(http.MethodPost, "/v2/team/app/blobs/uploads/", as("admin"), nil).Header.Get("Location")
	if loc == "" {
		t.Fatal("no upload session")
	}

	t.Run("refused", func(t *testing.T) {
		for _, authz := range []string{"", as("outsider") + "x", "Bearer nonsense"} {
			conn := rawRequest(t, r.srv.Addr, http.MethodPatch, loc, authz, 200000)
			stop := make(chan struct{})
			go trickle(conn, stop)
			resp := answerAndClose(t, conn, fmt.Sprintf("a slow body with credentials %q", authz))
			close(stop)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("a slow body with credentials %q: %d", authz, resp.StatusCode)
			}
		}
	})
	t.Run("cut", func(t *testing.T) {
		conn := rawRequest(t, r.srv.Addr, http.MethodPatch, loc, as("admin"), 200000)
		stop := make(chan struct{})
		defer close(stop)
		go trickle(conn, stop)
		resp := answerAndClose(t, conn, "an authorized slow body")
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(body), "BLOB_UPLOAD_INVALID") {
			t.Errorf("an authorized slow body: %d %s", resp.StatusCode, body)
		}
	})
	t.Run("steady", func(t *testing.T) {
		// 4 KiB every 100 ms for over two windows: 40 times the minimum
		blob := bytes.Repeat([]byte("steady "), 300<<10/7)
		loc := r.do(http.MethodPost, "/v2/team/app/blobs/uploads/", as("admin"), nil).Header.Get("Location")
		conn := rawRequest(t, r.srv.Addr, http.MethodPatch, loc, as("admin"), len(blob))
		start := time.Now()
		for rest := blob; len(rest) > 0; {
			n := min(4096, len(rest))
			if _, err := conn.Write(rest[:n]); err != nil {
				t.Fatalf("after %d bytes in %s: %v", len(blob)-len(rest), time.Since(start), err)
			}
			rest = rest[n:]
			time.Sleep(100 * time.Millisecond)
		}
		conn.SetReadDeadline(time.Now().Add(90 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil || resp.StatusCode != http.StatusAccepted {
			t.Fatalf("a steady body over %s: %v %v", time.Since(start), resp, err)
		}
		if got := resp.Header.Get("Range"); got != fmt.Sprintf("0-%d", len(blob)-1) {
			t.Errorf("Range after a steady body: %q", got)
		}
	})
}
