package server

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestWriteJSONLogsToTheServer: an answer that cannot be encoded is a 500 logged
// where the server logs, not to the process's default logger.
func TestWriteJSONLogsToTheServer(t *testing.T) {
	var logged bytes.Buffer
	s := &Server{log: slog.New(slog.NewJSONHandler(&logged, nil))}
	var global bytes.Buffer
	defer slog.SetDefault(slog.Default())
	slog.SetDefault(slog.New(slog.NewJSONHandler(&global, nil)))

	rec := httptest.NewRecorder()
	s.writeJSON(rec, httptest.NewRequest(http.MethodGet, "/v2/x/tags/list", nil), http.StatusOK, "application/json", make(chan int))
	if rec.Code != http.StatusInternalServerError || rec.Body.Len() != 0 {
		t.Errorf("answered %d with %q, want 500 and no body", rec.Code, rec.Body)
	}
	if !strings.Contains(logged.String(), `"msg":"encoding an answer","method":"GET","path":"/v2/x/tags/list"`) {
		t.Errorf("the server's log has %q", logged.String())
	}
	if global.Len() != 0 {
		t.Errorf("the default logger got %q", global.String())
	}
}
