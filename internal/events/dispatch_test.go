package events_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/graft-registry/graft/internal/events"
	"github.com/graft-registry/graft/internal/metastore"
	"github.com/graft-registry/graft/internal/metastore/sqlite"
)

func openStore(t *testing.T) metastore.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "graft.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func appendEvents(t *testing.T, s metastore.Store, from, to int) {
	t.Helper()
	for i := from; i <= to; i++ {
		err := s.Update(t.Context(), func(tx metastore.Tx) error {
			return tx.AppendEvent(t.Context(), &metastore.Event{Type: "test", Repo: "r", Time: time.Now(), Data: fmt.Appendf(nil, `{"n":%d}`, i)})
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// recorder delivers by recording, failing the events of fail (by seq) that many times
// first.
type recorder struct {
	mu        sync.Mutex
	delivered []int64
	fail      map[int64]int
}

func (r *recorder) Deliver(_ context.Context, e metastore.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail[e.Seq] > 0 {
		r.fail[e.Seq]--
		return errors.New("receiver down")
	}
	r.delivered = append(r.delivered, e.Seq)
	return nil
}

func (r *recorder) got() []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.delivered)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("%s: not within a minute", what)
}

var fast = events.Options{Lease: 2 * time.Second, Poll: 10 * time.Millisecond, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}

func seqs(from, to int64) []int64 {
	var out []int64
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

// Two replicas follow one consumer: every event is delivered once, in order, a failed
// one again until it goes, and nothing after it before it.
func TestDeliveryOnceInOrder(t *testing.T) {
	s := openStore(t)
	rec := &recorder{fail: map[int64]int{3: 2, 7: 1}}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var dispatchers []*events.Dispatcher
	for _, holder := range []string{"a", "b"} {
		opts := fast
		opts.Holder = holder
		d := events.NewDispatcher(s, []events.Consumer{{Name: "c", Handler: rec}}, opts)
		dispatchers = append(dispatchers, d)
		go d.Run(ctx)
	}
	waitFor(t, "the consumer claimed", func() bool {
		st, err := dispatchers[0].Status(t.Context())
		return err == nil && len(st) == 1 && st[0].Holder != ""
	})
	appendEvents(t, s, 1, 20)
	waitFor(t, "20 events delivered", func() bool { return len(rec.got()) >= 20 })
	if got := rec.got(); !slices.Equal(got, seqs(1, 20)) {
		t.Fatalf("delivered %v, want 1..20 once each, in order", got)
	}
	// the place moves once a batch is delivered
	var st []events.Status
	waitFor(t, "the consumer past every event", func() bool {
		var err error
		st, err = dispatchers[1].Status(t.Context())
		return err == nil && st[0].Backlog == 0
	})
	if st[0].LastSuccess.IsZero() || st[0].LastFailure.IsZero() || st[0].LastError == "" {
		t.Errorf("status after the failures and the catch-up: %+v", st[0])
	}
}

// A replica that stops holding a consumer (it died) leaves it to another once the lease
// runs out, which goes on from where the first stopped.
func TestTakeover(t *testing.T) {
	s := openStore(t)
	rec := &recorder{}
	first, stopFirst := context.WithCancel(t.Context())
	opts := fast
	opts.Holder, opts.Lease = "first", 500*time.Millisecond
	a := events.NewDispatcher(s, []events.Consumer{{Name: "c", Handler: rec}}, opts)
	done := make(chan struct{})
	go func() { a.Run(first); close(done) }()
	waitFor(t, "the first replica holds the consumer", func() bool {
		st, err := a.Status(t.Context())
		return err == nil && st[0].Holder != ""
	})
	appendEvents(t, s, 1, 5)
	waitFor(t, "5 events delivered", func() bool { return len(rec.got()) >= 5 })
	stopFirst()
	<-done

	opts.Holder = "second"
	b := events.NewDispatcher(s, []events.Consumer{{Name: "c", Handler: rec}}, opts)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go b.Run(ctx)
	appendEvents(t, s, 6, 10)
	waitFor(t, "10 events delivered", func() bool { return len(rec.got()) >= 10 })
	if got := rec.got(); !slices.Equal(got, seqs(1, 10)) {
		t.Fatalf("delivered %v, want 1..10 once each, in order", got)
	}
	waitFor(t, "the second replica past every event", func() bool {
		st, err := b.Status(t.Context())
		return err == nil && st[0].Backlog == 0 && st[0].Holder == "second"
	})
}

// The bell wakes an idle consumer: with a poll far longer than the test, an event
// still goes at once.
func TestBell(t *testing.T) {
	s := openStore(t)
	rec := &recorder{}
	bell := &events.Bell{}
	opts := fast
	opts.Holder, opts.Poll, opts.Bell = "only", time.Hour, bell
	d := events.NewDispatcher(s, []events.Consumer{{Name: "c", Handler: rec}}, opts)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go d.Run(ctx)
	waitFor(t, "the consumer claimed", func() bool {
		st, err := d.Status(t.Context())
		return err == nil && st[0].Holder != ""
	})
	// the consumer has looked once and found nothing: it sleeps for the poll now
	time.Sleep(50 * time.Millisecond)
	appendEvents(t, s, 1, 1)
	bell.Ring()
	waitFor(t, "the event delivered", func() bool { return len(rec.got()) == 1 })
}

// An idle consumer renews its lease when a third of it has passed, not at every poll,
// and never lets it lapse.
func TestIdleLeaseRenewal(t *testing.T) {
	s := openStore(t)
	opts := fast
	opts.Holder, opts.Lease = "only", 3*time.Second
	d := events.NewDispatcher(s, []events.Consumer{{Name: "c", Handler: &recorder{}}}, opts)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go d.Run(ctx)
	lease := func() time.Time {
		t.Helper()
		all, err := s.Consumers(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != 1 {
			return time.Time{}
		}
		if all[0].Holder != "only" {
			t.Fatalf("consumer held by %q", all[0].Holder)
		}
		return all[0].LeaseUntil
	}
	waitFor(t, "the consumer claimed", func() bool { return !lease().IsZero() })
	first := lease()
	// 50 polls of 10 ms, well within the first third of the lease
	time.Sleep(500 * time.Millisecond)
	if got := lease(); !got.Equal(first) {
		t.Fatalf("an idle consumer renewed its lease within a sixth of it: %v, then %v", first, got)
	}
	waitFor(t, "the lease renewed", func() bool { return lease().After(first) })
	if renewed := lease(); !first.After(time.Now()) || renewed.Sub(first) > opts.Lease {
		t.Errorf("lease until %v renewed to %v at %v: it ran out before, or was renewed too late", first, renewed, time.Now())
	}
}

// A delivery starts on a fresh lease: events that come while an idle consumer's lease is
// partly spent go out under a lease claimed anew, not under what is left of the old one.
func TestDeliveryOnFreshLease(t *testing.T) {
	s := openStore(t)
	opts := fast
	opts.Holder, opts.Lease = "only", 3*time.Second
	leaseLeft := make(chan time.Duration, 1)
	h := deliverFunc(func(ctx context.Context, e metastore.Event) error {
		all, err := s.Consumers(ctx)
		if err != nil || len(all) != 1 {
			return fmt.Errorf("consumers: %v, %v", all, err)
		}
		select {
		case leaseLeft <- time.Until(all[0].LeaseUntil):
		default:
		}
		return nil
	})
	d := events.NewDispatcher(s, []events.Consumer{{Name: "c", Handler: h}}, opts)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go d.Run(ctx)
	waitFor(t, "the consumer claimed", func() bool {
		all, err := s.Consumers(t.Context())
		return err == nil && len(all) == 1 && all[0].Holder == "only"
	})
	// A sixth of the lease spent: an idle consumer does not renew it yet.
	time.Sleep(opts.Lease / 6)
	appendEvents(t, s, 1, 1)
	select {
	case left := <-leaseLeft:
		// 2.5 s of the old lease would be left at most; a fresh one has nearly 3.
		if left < opts.Lease*9/10 {
			t.Errorf("the event went out with %v of the lease left, want a fresh lease of %v", left, opts.Lease)
		}
	case <-time.After(time.Minute):
		t.Fatal("the event was not delivered within a minute")
	}
}

type deliverFunc func(context.Context, metastore.Event) error

func (f deliverFunc) Deliver(ctx context.Context, e metastore.Event) error { return f(ctx, e) }
