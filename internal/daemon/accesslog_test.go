package daemon_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/graft-registry/graft/internal/config"
	"github.com/graft-registry/graft/internal/daemon"
	"github.com/graft-registry/graft/internal/registrytest"
)

// serve serves what graft serve serves, logging JSON, with the settings configure
// makes, with access control on: alice may do anything.
func serve(t *testing.T, configure func(*config.Config)) (string, *registrytest.LogBuffer) {
	t.Helper()
	logs := &registrytest.LogBuffer{}
	d := registrytest.StartDaemon(t, logs, registrytest.Admin("alice", "alice-pw"), func(cfg *config.Config) {
		cfg.Log.Format = "json"
		if configure != nil {
			configure(cfg)
		}
	})
	return d.URL, logs
}

func send(t *testing.T, method, url string, body []byte, header ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("alice", "alice-pw")
	req.Header.Set("User-Agent", "graft-test/1")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

type line struct {
	Level      string  `json:"level"`
	Msg        string  `json:"msg"`
	Time       string  `json:"time"`
	Remote     string  `json:"remote"`
	User       string  `json:"user"`
	Method     string  `json:"method"`
	Path       string  `json:"path"`
	Status     int     `json:"status"`
	BytesIn    int64   `json:"bytes_in"`
	BytesOut   int64   `json:"bytes_out"`
	DurationMS float64 `json:"duration_ms"`
	UserAgent  string  `json:"user_agent"`
	RequestID  string  `json:"request_id"`
}

// requests are the access log's lines in log.
func requests(t *testing.T, log string) []line {
	t.Helper()
	var out []line
	for l := range strings.Lines(log) {
		var v line
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatalf("a log line that is no JSON: %q", l)
		}
		if v.Msg == "request" {
			out = append(out, v)
		}
	}
	return out
}

// One line per request at info, with the client behind a trusted proxy, the user, the
// bytes both ways and the request id the answer carries; the web view's requests too;
// probes only at debug.
func TestAccessLog(t *testing.T) {
	url, logs := serve(t, func(c *config.Config) { c.TrustedProxies = "127.0.0.1/32" })
	blob := []byte("hello, access log")
	d := digest.FromBytes(blob)

	push := send(t, http.MethodPost, url+"/v2/team/app/blobs/uploads/?digest="+d.String(), blob,
		"X-Forwarded-For", "203.0.113.7")
	if push.StatusCode != http.StatusCreated {
		t.Fatalf("push: %s", push.Status)
	}
	pull := send(t, http.MethodGet, url+"/v2/team/app/blobs/"+d.String(), nil)
	send(t, http.MethodGet, url+"/ui/", nil)
	send(t, http.MethodGet, url+"/healthz", nil)
	send(t, http.MethodGet, url+"/readyz", nil)

	got := requests(t, logs.String())
	if len(got) != 3 {
		t.Fatalf("%d request lines, want 3 (push, pull, web view; no probes at info):\n%s", len(got), logs)
	}
	p := got[0]
	if p.Level != "INFO" || p.Time == "" || p.Remote != "203.0.113.7" || p.User != "alice" || p.Method != http.MethodPost ||
		!strings.HasPrefix(p.Path, "/v2/team/app/blobs/uploads/?digest=") || p.Status != http.StatusCreated ||
		p.BytesIn != int64(len(blob)) || p.UserAgent != "graft-test/1" || p.DurationMS <= 0 ||
		p.RequestID == "" || p.RequestID != push.Header.Get("X-Request-Id") {
		t.Errorf("the push's line: %+v (answer's request id %q)", p, push.Header.Get("X-Request-Id"))
	}
	g := got[1]
	if g.Method != http.MethodGet || g.Status != http.StatusOK || g.BytesOut != int64(len(blob)) || g.BytesIn != 0 ||
		!strings.HasPrefix(g.Remote, "127.0.0.1:") || g.RequestID != pull.Header.Get("X-Request-Id") || g.RequestID == p.RequestID {
		t.Errorf("the pull's line: %+v", g)
	}
	if u := got[2]; u.Path != "/ui/" || u.Status != http.StatusOK || u.BytesOut == 0 {
		t.Errorf("the web view's line: %+v", u)
	}
}

func TestAccessLogDebugProbes(t *testing.T) {
	url, logs := serve(t, func(c *config.Config) { c.Log.Level = "debug" })
	send(t, http.MethodGet, url+"/healthz", nil)
	got := requests(t, logs.String())
	if len(got) != 1 || got[0].Level != "DEBUG" || got[0].Path != "/healthz" {
		t.Errorf("a probe at debug: %+v\n%s", got, logs)
	}
}

func TestAccessLogOff(t *testing.T) {
	url, logs := serve(t, func(c *config.Config) { c.Log.Access = false })
	resp := send(t, http.MethodGet, url+"/v2/", nil)
	if got := requests(t, logs.String()); len(got) != 0 {
		t.Errorf("log.access false logged %+v", got)
	}
	if resp.Header.Get("X-Request-Id") == "" {
		t.Error("no request id in the answer with the access log off")
	}
}

func TestAccessLogText(t *testing.T) {
	url, logs := serve(t, func(c *config.Config) { c.Log.Format = "text" })
	send(t, http.MethodGet, url+"/v2/", nil)
	l := logs.String()
	for _, want := range []string{"msg=request", "user=alice", "method=GET", "path=/v2/", "status=200", "duration_ms=", "user_agent=graft-test/1", "request_id="} {
		if !strings.Contains(l, want) {
			t.Errorf("the text line has no %s:\n%s", want, l)
		}
	}
}

// Durations read as durations, in JSON too, not as nanoseconds.
func TestLoggerDurations(t *testing.T) {
	cfg := config.Default()
	cfg.Log.Format = "json"
	var buf bytes.Buffer
	daemon.NewLogger(&buf, &cfg).Info("shutting down", "timeout", 30*time.Second, "took", 1188644*time.Nanosecond)
	if !strings.Contains(buf.String(), `"timeout":"30s"`) || !strings.Contains(buf.String(), `"took":"1.189ms"`) {
		t.Errorf("durations: %s", buf.String())
	}
}
