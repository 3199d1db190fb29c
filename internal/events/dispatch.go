package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/graft-registry/graft/internal/metastore"
)

// A Handler delivers the events of one consumer.
type Handler interface {
	// Deliver delivers e, or decides it is none of the consumer's business; an error
	// makes the dispatcher try it again later. An event may come again after it was
	// delivered (a process died before it recorded the delivery): delivery is at least
	// once.
	Deliver(ctx context.Context, e metastore.Event) error
}

// Consumer is a follower of the outbox.
type Consumer struct {
	// Name names it in the outbox on every replica and across restarts: a consumer
	// renamed starts again from the newest event.
	Name    string
	Handler Handler
}

// Options tune a Dispatcher; zero values take the defaults.
type Options struct {
	// Holder names this process in the consumers' leases: unique among the replicas.
	Holder string
	// Lease is how long a replica holds a consumer without renewing it (30 s): how
	// long its events wait for another replica after it dies.
	Lease time.Duration
	// Poll is how often an idle consumer looks for new events (500 ms).
	Poll time.Duration
	// MinBackoff and MaxBackoff bound the pause after a failed delivery, which doubles
	// with each failure in a row (1 s, 5 min).
	MinBackoff, MaxBackoff time.Duration
	// Keep is how long an event stays in the outbox once every consumer has passed
	// it (1 h).
	Keep time.Duration
	// Bell, when set, wakes idle consumers at once: this process rings it when a change
	// that wrote events commits. Without it, or for another replica's changes, they
	// look every Poll.
	Bell   *Bell
	Logger *slog.Logger
}

// A Bell wakes the idle consumers of a dispatcher.
type Bell struct {
	mu        sync.Mutex
	listeners []chan struct{}
}

// Ring wakes every idle consumer; it never blocks.
func (b *Bell) Ring() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range b.listeners {
		select {
		case c <- struct{}{}:
		default: // already rung: one wake-up covers every event before it
		}
	}
}

func (b *Bell) listen() <-chan struct{} {
	c := make(chan struct{}, 1)
	if b != nil {
		b.mu.Lock()
		b.listeners = append(b.listeners, c)
		b.mu.Unlock()
	}
	return c
}

func (o *Options) defaults() {
	if o.Lease <= 0 {
		o.Lease = 30 * time.Second
	}
	if o.Poll <= 0 {
		o.Poll = 500 * time.Millisecond
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = time.Second
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = max(5*time.Minute, o.MinBackoff)
	}
	if o.Keep <= 0 {
		o.Keep = time.Hour
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Holder == "" {
		o.Holder = fmt.Sprintf("graft-%08x", rand.Uint32())
	}
}

// batch is how many events a consumer reads at once.
const batch = 100

// A Dispatcher delivers the outbox to its consumers. Every replica runs one with the
// same consumers; each consumer is delivered by one replica at a time, the holder of
// its lease, in outbox order, and moves past an event only once it is delivered.
type Dispatcher struct {
	store     metastore.Store
	consumers []Consumer
	opts      Options
	log       *slog.Logger
	now       func() time.Time

	delivered, failed *prometheus.CounterVec
}

// NewDispatcher returns a dispatcher of the outbox of store to consumers.
func NewDispatcher(store metastore.Store, consumers []Consumer, opts Options) *Dispatcher {
	opts.defaults()
	return &Dispatcher{
		store: store, consumers: consumers, opts: opts, log: opts.Logger, now: time.Now,
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "graft_events_delivered_total",
			Help: "Events a consumer delivered (those it passed over as none of its business included).",
		}, []string{"consumer"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "graft_events_delivery_failures_total",
			Help: "Deliveries of events that failed, to be tried again.",
		}, []string{"consumer"}),
	}
}

// Run delivers until ctx is done.
func (d *Dispatcher) Run(ctx context.Context) {
	if len(d.consumers) == 0 {
		return
	}
	d.forgetUnconfigured(ctx)
	var wg sync.WaitGroup
	for _, c := range d.consumers {
		wg.Go(func() { d.follow(ctx, c) })
	}
	wg.Go(func() { d.prune(ctx) })
	wg.Wait()
}

// forgetUnconfigured deletes the consumers no replica has held for a day: those taken
// out of the configuration, which would otherwise keep every event from being pruned.
func (d *Dispatcher) forgetUnconfigured(ctx context.Context) {
	all, err := d.store.Consumers(ctx)
	if err != nil {
		d.log.Warn("events: list consumers", "err", err)
		return
	}
	for _, c := range all {
		if slices.ContainsFunc(d.consumers, func(k Consumer) bool { return k.Name == c.Name }) ||
			c.LeaseUntil.After(d.now().Add(-24*time.Hour)) {
			continue
		}
		err := d.store.Update(ctx, func(tx metastore.Tx) error { return tx.DeleteConsumer(ctx, c.Name) })
		if err != nil {
			d.log.Warn("events: forget consumer", "consumer", c.Name, "err", err)
			continue
		}
		d.log.Info("events: forgot a consumer no longer configured", "consumer", c.Name, "after", c.After)
	}
}

// follow delivers the events of c while this process holds its lease.
func (d *Dispatcher) follow(ctx context.Context, c Consumer) {
	failures := 0
	bell := d.opts.Bell.listen()
	var held *metastore.Consumer
	for ctx.Err() == nil {
		// The lease is renewed when a third of it has passed, not at every poll: an
		// idle consumer would otherwise write to the store twice a second.
		if held == nil || held.LeaseUntil.Sub(d.now()) < d.opts.Lease*2/3 {
			var err error
			if held, err = d.claim(ctx, c.Name); err != nil {
				d.log.Warn("events: claim consumer", "consumer", c.Name, "err", err)
				sleep(ctx, d.opts.MinBackoff)
				continue
			}
			if held == nil {
				sleep(ctx, d.opts.Lease/3+rand.N(d.opts.Poll))
				continue
			}
		}
		n, err := d.deliver(ctx, c, held)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			held = nil // claimed again before the next delivery: the lease may be lost
			failures++
			d.failed.WithLabelValues(c.Name).Inc()
			pause := min(d.opts.MinBackoff<<min(failures-1, 20), d.opts.MaxBackoff)
			d.log.Warn("events: delivery failed", "consumer", c.Name, "err", err, "failures", failures, "retry_in", pause)
			if err := d.store.Update(ctx, func(tx metastore.Tx) error {
				return tx.FailConsumer(ctx, c.Name, d.opts.Holder, err.Error(), d.now())
			}); err != nil && !errors.Is(err, metastore.ErrNotFound) {
				d.log.Warn("events: record a failure", "consumer", c.Name, "err", err)
			}
			sleep(ctx, pause)
		case n == 0:
			if failures > 0 {
				d.log.Info("events: delivering again", "consumer", c.Name, "after_failures", failures)
			}
			failures = 0
			t := time.NewTimer(d.opts.Poll)
			select {
			case <-t.C:
			case <-bell:
			case <-ctx.Done():
			}
			t.Stop()
		default:
			if failures > 0 {
				d.log.Info("events: delivering again", "consumer", c.Name, "after_failures", failures, "delivered", n)
			}
			failures = 0
		}
	}
}

// claim takes or renews the lease of consumer name; nil when another holder has it.
func (d *Dispatcher) claim(ctx context.Context, name string) (*metastore.Consumer, error) {
	head, err := d.store.EventHead(ctx)
	if err != nil {
		return nil, err
	}
	var held *metastore.Consumer
	err = d.store.Update(ctx, func(tx metastore.Tx) error {
		c, ok, err := tx.ClaimConsumer(ctx, name, d.opts.Holder, d.now().Add(d.opts.Lease), head)
		if ok {
			held = c
		}
		return err
	})
	return held, err
}

// deliver delivers the next events of c, which this process holds, and moves c past
// those delivered. It returns how many it delivered, and the error that stopped it.
func (d *Dispatcher) deliver(ctx context.Context, c Consumer, held *metastore.Consumer) (int, error) {
	if err := d.store.SequenceEvents(ctx); err != nil {
		return 0, err
	}
	es, err := d.store.Events(ctx, held.After, batch)
	if err != nil || len(es) == 0 {
		return 0, err
	}
	// A delivery starts on a fresh lease: an idle consumer renews its lease only when a
	// third of it has passed, which would leave less than the renewal's period here.
	fresh, err := d.claim(ctx, c.Name)
	if err != nil {
		return 0, err
	}
	if fresh == nil {
		return 0, errors.New("another replica holds the consumer")
	}
	*held = *fresh
	// The lease is renewed while the events go out; should it be lost (this process
	// stalled, another took over), delivery stops.
	lctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := make(chan struct{})
	defer close(stop)
	go d.renew(lctx, c.Name, cancel, stop)

	done, at := 0, held.After
	advance := func() error {
		if at == held.After {
			return nil
		}
		// What went out is recorded even when the dispatcher is stopping: a stop
		// between a delivery and its record would send the event again.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), advanceTimeout)
		defer cancel()
		err := d.store.Update(actx, func(tx metastore.Tx) error {
			return tx.AdvanceConsumer(actx, c.Name, d.opts.Holder, at, d.now())
		})
		if errors.Is(err, metastore.ErrNotFound) {
			return errors.New("the lease was lost")
		}
		if err == nil {
			held.After = at
		}
		return err
	}
	last := d.now()
	for _, e := range es {
		if err := c.Handler.Deliver(lctx, e); err != nil {
			if cause := context.Cause(lctx); cause != nil && ctx.Err() == nil {
				err = cause
			}
			return done, errors.Join(fmt.Errorf("event %d (%s of %s): %w", e.Seq, e.Type, e.Repo, err), advance())
		}
		d.delivered.WithLabelValues(c.Name).Inc()
		done++
		at = e.Seq
		// A long batch records its progress as it goes, so that a process that dies
		// in it leaves few events to deliver again.
		if d.now().Sub(last) > time.Second {
			if err := advance(); err != nil {
				return done, err
			}
			last = d.now()
		}
	}
	return done, advance()
}

// advanceTimeout bounds the record of a delivery's progress, which outlives a stop.
const advanceTimeout = 10 * time.Second

// renew renews the lease of consumer name every third of a lease until stop, and
// cancels delivery when it cannot.
func (d *Dispatcher) renew(ctx context.Context, name string, cancel context.CancelCauseFunc, stop <-chan struct{}) {
	t := time.NewTicker(d.opts.Lease / 3)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		case <-t.C:
		}
		held, err := d.claim(ctx, name)
		if err == nil && held == nil {
			err = errors.New("another replica holds the consumer")
		}
		if err != nil {
			cancel(fmt.Errorf("renewing the lease: %w", err))
			return
		}
	}
}

// prune removes, now and then, the events every consumer has passed.
func (d *Dispatcher) prune(ctx context.Context) {
	for {
		var n int64
		err := d.store.Update(ctx, func(tx metastore.Tx) (err error) {
			n, err = tx.PruneEvents(ctx, d.now().Add(-d.opts.Keep))
			return err
		})
		switch {
		case err != nil && ctx.Err() == nil:
			d.log.Warn("events: prune the outbox", "err", err)
		case n > 0:
			d.log.Debug("events: pruned the outbox", "events", n)
		}
		if !sleep(ctx, 5*time.Minute) {
			return
		}
	}
}

// sleep waits for d or ctx; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Status is where a consumer is.
type Status struct {
	Name string `json:"name"`
	// Backlog is how many events wait for it; Oldest the time of the first of them.
	Backlog int64     `json:"backlog"`
	Oldest  time.Time `json:"oldest,omitzero"`
	// Lag is how long the first waiting event has waited.
	Lag         Duration  `json:"lag"`
	LastSuccess time.Time `json:"lastSuccess,omitzero"`
	LastFailure time.Time `json:"lastFailure,omitzero"`
	LastError   string    `json:"lastError,omitempty"`
	// Failures counts the failed deliveries since the last success.
	Failures int64  `json:"failures"`
	Holder   string `json:"holder,omitempty"`
}

// Duration is a time.Duration that JSON shows as its text ("1m30s").
type Duration time.Duration

func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// Status returns where each configured consumer is, in the order configured. A
// consumer no replica has claimed yet has its backlog counted from the newest event.
func (d *Dispatcher) Status(ctx context.Context) ([]Status, error) {
	all, err := d.store.Consumers(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Status, 0, len(d.consumers))
	for _, c := range d.consumers {
		st := Status{Name: c.Name}
		i := slices.IndexFunc(all, func(k metastore.Consumer) bool { return k.Name == c.Name })
		if i < 0 {
			out = append(out, st)
			continue
		}
		k := all[i]
		st.LastSuccess, st.LastFailure, st.LastError, st.Failures = k.LastSuccess, k.LastFailure, k.LastError, k.Failures
		if k.LeaseUntil.After(d.now()) {
			st.Holder = k.Holder
		}
		if st.Backlog, st.Oldest, err = d.store.Backlog(ctx, k.After); err != nil {
			return nil, err
		}
		if !st.Oldest.IsZero() {
			st.Lag = Duration(max(d.now().Sub(st.Oldest), 0))
		}
		out = append(out, st)
	}
	return out, nil
}

// Collectors returns the dispatcher's metrics: deliveries and failures counted, and
// each consumer's backlog and lag, read from the store when scraped.
func (d *Dispatcher) Collectors() []prometheus.Collector {
	return []prometheus.Collector{d.delivered, d.failed, statusCollector{d}}
}

var (
	backlogDesc = prometheus.NewDesc("graft_events_backlog", "Events waiting for a consumer.", []string{"consumer"}, nil)
	lagDesc     = prometheus.NewDesc("graft_events_lag_seconds", "How long the first event waiting for a consumer has waited.", []string{"consumer"}, nil)
	successDesc = prometheus.NewDesc("graft_events_last_success_timestamp_seconds", "When a consumer last delivered an event.", []string{"consumer"}, nil)
)

type statusCollector struct{ d *Dispatcher }

func (c statusCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- backlogDesc
	ch <- lagDesc
	ch <- successDesc
}

func (c statusCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sts, err := c.d.Status(ctx)
	if err != nil {
		c.d.log.Warn("events: status for metrics", "err", err)
		return
	}
	for _, st := range sts {
		ch <- prometheus.MustNewConstMetric(backlogDesc, prometheus.GaugeValue, float64(st.Backlog), st.Name)
		ch <- prometheus.MustNewConstMetric(lagDesc, prometheus.GaugeValue, time.Duration(st.Lag).Seconds(), st.Name)
		if !st.LastSuccess.IsZero() {
			ch <- prometheus.MustNewConstMetric(successDesc, prometheus.GaugeValue, float64(st.LastSuccess.UnixNano())/1e9, st.Name)
		}
	}
}
