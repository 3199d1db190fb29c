package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/graft-registry/graft/internal/metastore"
)

func appendEvent(t *testing.T, s metastore.Store, typ, repo, data string) {
	t.Helper()
	update(t, s, func(tx metastore.Tx) error {
		return tx.AppendEvent(t.Context(), &metastore.Event{Type: typ, Repo: repo, Data: []byte(data), Time: t0})
	})
}

// readEvents places the events committed, then reads them.
func readEvents(t *testing.T, s metastore.Store, after int64, n int) []metastore.Event {
	t.Helper()
	if err := s.SequenceEvents(t.Context()); err != nil {
		t.Fatalf("SequenceEvents: %v", err)
	}
	es, err := s.Events(t.Context(), after, n)
	if err != nil {
		t.Fatalf("Events: %v", err)
	}
	return es
}

// testEvents: events come back in the order of their transactions, with what was
// written, in pages; a rolled-back transaction writes none; the head is the last.
func testEvents(t *testing.T, s metastore.Store) {
	ctx := t.Context()
	if head, err := s.EventHead(ctx); err != nil || head != 0 {
		t.Fatalf("EventHead of an empty outbox = %v, %v; want the zero place", head, err)
	}
	if es := readEvents(t, s, 0, 10); len(es) != 0 {
		t.Fatalf("Events of an empty outbox = %v", es)
	}
	appendEvent(t, s, "one", "a/b", `{"n":1}`)
	errBoom := errors.New("boom")
	err := s.Update(ctx, func(tx metastore.Tx) error {
		if err := tx.AppendEvent(ctx, &metastore.Event{Type: "rolled-back", Repo: "a/b", Data: []byte(`{}`)}); err != nil {
			return err
		}
		return errBoom
	})
	if !errors.Is(err, errBoom) {
		t.Fatalf("Update = %v, want %v", err, errBoom)
	}
	update(t, s, func(tx metastore.Tx) error {
		for _, typ := range []string{"two", "three"} {
			if err := tx.AppendEvent(ctx, &metastore.Event{Type: typ, Repo: "c", Data: []byte(`{}`), Time: t0.Add(time.Second)}); err != nil {
				return err
			}
		}
		return nil
	})
	all := readEvents(t, s, 0, 10)
	var types []string
	for _, e := range all {
		types = append(types, e.Type)
	}
	if fmt.Sprint(types) != "[one two three]" {
		t.Fatalf("Events = %v, want [one two three]", types)
	}
	if e := all[0]; e.Repo != "a/b" || string(e.Data) != `{"n":1}` || !e.Time.Equal(t0) {
		t.Errorf("first event = %+v, want repo a/b, data {\"n\":1}, time %v", e, t0)
	}
	if !(0 < all[0].Seq && all[0].Seq < all[1].Seq && all[1].Seq < all[2].Seq) {
		t.Errorf("places not increasing: %v", []int64{all[0].Seq, all[1].Seq, all[2].Seq})
	}
	page := readEvents(t, s, 0, 2)
	rest := readEvents(t, s, page[1].Seq, 2)
	if len(page) != 2 || len(rest) != 1 || rest[0].Type != "three" {
		t.Errorf("pages of 2 = %d then %v, want 2 then [three]", len(page), rest)
	}
	if head, err := s.EventHead(ctx); err != nil || head != all[2].Seq {
		t.Errorf("EventHead = %v, %v; want %v", head, err, all[2].Seq)
	}
	n, first, err := s.Backlog(ctx, all[0].Seq)
	if err != nil || n != 2 || !first.Equal(t0.Add(time.Second)) {
		t.Errorf("Backlog after the first = %d, %v, %v; want 2, %v", n, first, err, t0.Add(time.Second))
	}
	if n, first, err := s.Backlog(ctx, all[2].Seq); err != nil || n != 0 || !first.IsZero() {
		t.Errorf("Backlog after the last = %d, %v, %v; want 0 and the zero time", n, first, err)
	}
}

// testEventsConcurrent: transactions that write events at the same time, committing
// in any order: a reader that follows the outbox while they run sees every event
// once, and never one before another it has already passed.
func testEventsConcurrent(t *testing.T, s metastore.Store) {
	ctx := t.Context()
	const writers, each = 8, 25
	var wg sync.WaitGroup
	done := make(chan struct{})
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				err := s.Update(ctx, func(tx metastore.Tx) error {
					// Another write first, so that the transaction starts before its event.
					if err := tx.LinkBlob(ctx, fmt.Sprintf("concurrent/%d", w), digest.FromString(fmt.Sprint(i)), 1); err != nil {
						return err
					}
					if i%2 == 0 {
						time.Sleep(time.Millisecond)
					}
					return tx.AppendEvent(ctx, &metastore.Event{Type: "e", Repo: "r", Data: fmt.Appendf(nil, `"%d/%d"`, w, i)})
				})
				if err != nil {
					t.Errorf("Update: %v", err)
					return
				}
			}
		}()
	}
	go func() { wg.Wait(); close(done) }()

	seen := map[string]bool{}
	var at int64
	follow := func() {
		for {
			es := readEvents(t, s, at, 7)
			if len(es) == 0 {
				return
			}
			for _, e := range es {
				if e.Seq <= at {
					t.Fatalf("event at %v after the place %v already passed", e.Seq, at)
				}
				if seen[string(e.Data)] {
					t.Fatalf("event %s read twice", e.Data)
				}
				seen[string(e.Data)] = true
				at = e.Seq
			}
		}
	}
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		follow()
	}
	follow()
	if len(seen) != writers*each {
		t.Errorf("the reader saw %d events of %d", len(seen), writers*each)
	}
}

// testConsumers: one holder at a time holds a consumer; only the holder moves it or
// records its failures; a lease that ran out goes to the next claimer with the place
// its last holder reached.
func testConsumers(t *testing.T, s metastore.Store) {
	ctx := t.Context()
	appendEvent(t, s, "one", "r", `{}`)
	appendEvent(t, s, "two", "r", `{}`)
	es := readEvents(t, s, 0, 10)
	now := time.Now()
	claim := func(holder string, until time.Time, start int64) (*metastore.Consumer, bool) {
		t.Helper()
		var (
			c  *metastore.Consumer
			ok bool
		)
		update(t, s, func(tx metastore.Tx) (err error) {
			c, ok, err = tx.ClaimConsumer(ctx, "hook", holder, until, start)
			return err
		})
		return c, ok
	}
	c, ok := claim("a", now.Add(time.Hour), es[0].Seq)
	if !ok || c.After != es[0].Seq || c.Holder != "a" || c.Failures != 0 {
		t.Fatalf("first claim = %+v, %v; want a new consumer held by a after the first event", c, ok)
	}
	if c, ok := claim("b", now.Add(time.Hour), 0); ok {
		t.Fatalf("b claimed a consumer a holds: %+v", c)
	}
	err := s.Update(ctx, func(tx metastore.Tx) error {
		return tx.AdvanceConsumer(ctx, "hook", "b", es[1].Seq, now)
	})
	wantNotFound(t, "AdvanceConsumer by a holder without the lease", err)
	err = s.Update(ctx, func(tx metastore.Tx) error { return tx.FailConsumer(ctx, "hook", "b", "no", now) })
	wantNotFound(t, "FailConsumer by a holder without the lease", err)

	failedAt := now.Truncate(time.Microsecond)
	update(t, s, func(tx metastore.Tx) error { return tx.FailConsumer(ctx, "hook", "a", "connection refused", failedAt) })
	update(t, s, func(tx metastore.Tx) error { return tx.FailConsumer(ctx, "hook", "a", "503", failedAt) })
	cs, err := s.Consumers(ctx)
	if err != nil || len(cs) != 1 {
		t.Fatalf("Consumers = %v, %v; want one", cs, err)
	}
	if c := cs[0]; c.Failures != 2 || c.LastError != "503" || !c.LastFailure.Equal(failedAt) || !c.LastSuccess.IsZero() {
		t.Errorf("after two failures: %+v", c)
	}

	// a renews its own lease, here to one that has run out; b then takes it over.
	if _, ok := claim("a", now.Add(-time.Second), 0); !ok {
		t.Fatal("a could not renew its own lease")
	}
	update(t, s, func(tx metastore.Tx) error { return tx.AdvanceConsumer(ctx, "hook", "a", es[1].Seq, failedAt) })
	c, ok = claim("b", now.Add(time.Hour), 0)
	if !ok || c.Holder != "b" || c.After != es[1].Seq || c.Failures != 0 || !c.LastSuccess.Equal(failedAt) {
		t.Fatalf("b's claim of a lapsed lease = %+v, %v; want b holding it after the second event, failures reset", c, ok)
	}
	err = s.Update(ctx, func(tx metastore.Tx) error { return tx.AdvanceConsumer(ctx, "hook", "a", es[1].Seq, now) })
	wantNotFound(t, "AdvanceConsumer by the holder whose lease lapsed", err)
}

// testPruneEvents: events go once every consumer has passed them and they are old
// enough; never before.
func testPruneEvents(t *testing.T, s metastore.Store) {
	ctx := t.Context()
	for i := range 4 {
		update(t, s, func(tx metastore.Tx) error {
			return tx.AppendEvent(ctx, &metastore.Event{Type: "e", Repo: "r", Data: []byte(`{}`), Time: t0.Add(time.Duration(i) * time.Hour)})
		})
	}
	es := readEvents(t, s, 0, 10)
	prune := func(before time.Time) int64 {
		t.Helper()
		var n int64
		update(t, s, func(tx metastore.Tx) (err error) {
			n, err = tx.PruneEvents(ctx, before)
			return err
		})
		return n
	}
	until := time.Now().Add(time.Hour)
	for _, name := range []string{"slow", "fast"} {
		update(t, s, func(tx metastore.Tx) error {
			_, _, err := tx.ClaimConsumer(ctx, name, "h", until, es[0].Seq)
			return err
		})
	}
	update(t, s, func(tx metastore.Tx) error { return tx.AdvanceConsumer(ctx, "fast", "h", es[3].Seq, t0) })
	if n := prune(t0.Add(time.Hour)); n != 1 {
		t.Errorf("pruned %d events older than the second, that both consumers passed; want 1", n)
	}
	if n := prune(t0.Add(10 * time.Hour)); n != 0 {
		t.Errorf("pruned %d events the slow consumer has not passed; want 0", n)
	}
	update(t, s, func(tx metastore.Tx) error { return tx.AdvanceConsumer(ctx, "slow", "h", es[2].Seq, t0) })
	if n := prune(t0.Add(10 * time.Hour)); n != 2 {
		t.Errorf("pruned %d events once the slow consumer passed the third; want 2", n)
	}
	left := readEvents(t, s, 0, 10)
	if len(left) != 1 || left[0].Seq != es[3].Seq {
		t.Errorf("left after pruning: %v; want the last event only", left)
	}
}
