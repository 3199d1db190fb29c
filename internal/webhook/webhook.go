// Package webhook delivers the registry's events to HTTP receivers, as CloudEvents 1.0
// in structured mode: one POST per event, its body the event as JSON.
//
// A delivery succeeds when the receiver answers 2xx; anything else is tried again
// until it does, so a receiver may see an event more than once (after a timeout, or a
// process that died before recording the delivery). The event's id, also sent as the
// Idempotency-Key header, is the same every time: a receiver drops the ones it has
// seen. With a secret, the body is signed: X-Graft-Signature-256 is "sha256=" and the
// hex HMAC-SHA256 of the body under the secret, as GitHub signs its webhooks.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/graft-registry/graft/internal/events"
	"github.com/graft-registry/graft/internal/metastore"
	"github.com/graft-registry/graft/internal/pattern"
)

// SignatureHeader carries the HMAC of the body when the webhook has a secret.
const SignatureHeader = "X-Graft-Signature-256"

// Webhook is a receiver of events: an events.Handler.
type Webhook struct {
	// URL receives the POSTs.
	URL string
	// Repositories, when not empty, limits the events to those of matching
	// repositories.
	Repositories pattern.Set
	// Types, when not empty, limits the events to those of these types.
	Types []string
	// Header is sent with every POST.
	Header http.Header
	// Secret, when set, signs every body.
	Secret []byte
	// Source is the CloudEvents source of the events: the registry.
	Source string
	// Client sends the POSTs; nil is a client with a 30-second timeout.
	Client *http.Client
}

var defaultClient = &http.Client{Timeout: 30 * time.Second}

// Deliver implements events.Handler.
func (w *Webhook) Deliver(ctx context.Context, e metastore.Event) error {
	if len(w.Repositories) > 0 && !w.Repositories.Match(e.Repo) || len(w.Types) > 0 && !slices.Contains(w.Types, e.Type) {
		return nil
	}
	ce, err := events.NewCloudEvent(e, w.Source)
	if err != nil {
		return err
	}
	body, err := json.Marshal(ce)
	if err != nil {
		return fmt.Errorf("encode event: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	for k, vs := range w.Header {
		req.Header[k] = vs
	}
	req.Header.Set("Content-Type", "application/cloudevents+json")
	req.Header.Set("Idempotency-Key", ce.ID)
	if len(w.Secret) > 0 {
		req.Header.Set(SignatureHeader, Sign(w.Secret, body))
	}
	client := w.Client
	if client == nil {
		client = defaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s answered %s", w.URL, strconv.Itoa(resp.StatusCode)+" "+http.StatusText(resp.StatusCode))
	}
	return nil
}

// Sign returns the value of SignatureHeader for body under secret.
func Sign(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// Verify reports whether signature is the signature of body under secret, in
// constant time: what a receiver checks.
func Verify(secret, body []byte, signature string) bool {
	return hmac.Equal([]byte(signature), []byte(Sign(secret, body)))
}
