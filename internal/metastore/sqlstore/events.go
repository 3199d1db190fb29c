package sqlstore

import (
	"context"
	"errors"
	"time"

	"github.com/graft-registry/graft/internal/metastore"
)

// The outbox: events written in the transaction of the change they record, and the
// places of the consumers that follow them.

func (t *tx) AppendEvent(ctx context.Context, e *metastore.Event) error {
	if e.Time.IsZero() {
		e.Time = t.s.now()
	}
	// Nothing is read back: the insert travels with the transaction's next statement,
	// or its commit, which reports its error.
	t.q.Defer(t.d.AppendEvent, e.Time, e.Type, e.Repo, e.Data)
	return nil
}

// SequenceEvents implements metastore.EventSequencer. Where the database places events
// as it commits them (Queries.SequenceEvents is empty), there is nothing to do.
func (s *Store) SequenceEvents(ctx context.Context) error {
	if s.d.SequenceEvents == "" {
		return nil
	}
	_, err := s.run.Sweep(ctx, func(q TxQuerier) (bool, error) {
		q.Defer(s.d.SequenceHold)
		_, err := q.Exec(ctx, s.d.SequenceEvents)
		return err == nil, err
	})
	return wrap("place events", err)
}

func (r reader) Events(ctx context.Context, after int64, n int) ([]metastore.Event, error) {
	return collect(ctx, r.q, "read events", r.d.Events, []any{after, n}, func(row Row) (metastore.Event, error) {
		var e metastore.Event
		if err := row.Scan(&e.Seq, &e.Time, &e.Type, &e.Repo, &e.Data); err != nil {
			return e, err
		}
		e.Time = e.Time.UTC()
		return e, nil
	})
}

func (r reader) EventHead(ctx context.Context) (int64, error) {
	var seq int64
	err := r.q.QueryRow(ctx, r.d.EventHead).Scan(&seq)
	return seq, wrap("read the head of the outbox", err)
}

func (r reader) Backlog(ctx context.Context, after int64) (int64, time.Time, error) {
	var (
		n     int64
		first *time.Time
	)
	if err := r.q.QueryRow(ctx, r.d.Backlog, after).Scan(&n, &first); err != nil {
		return 0, time.Time{}, wrap("count the backlog", err)
	}
	if first == nil {
		return n, time.Time{}, nil
	}
	return n, first.UTC(), nil
}

func scanConsumer(row Row) (metastore.Consumer, error) {
	var (
		c                        metastore.Consumer
		lastSuccess, lastFailure *time.Time
	)
	err := row.Scan(&c.Name, &c.After, &c.Holder, &c.LeaseUntil, &lastSuccess, &lastFailure, &c.LastError, &c.Failures)
	if err != nil {
		return c, err
	}
	c.LeaseUntil = c.LeaseUntil.UTC()
	if lastSuccess != nil {
		c.LastSuccess = lastSuccess.UTC()
	}
	if lastFailure != nil {
		c.LastFailure = lastFailure.UTC()
	}
	return c, nil
}

func (r reader) Consumers(ctx context.Context) ([]metastore.Consumer, error) {
	return collect(ctx, r.q, "list consumers", r.d.Consumers, nil, scanConsumer)
}

func (t *tx) ClaimConsumer(ctx context.Context, name, holder string, until time.Time, start int64) (*metastore.Consumer, bool, error) {
	c, err := scanConsumer(t.q.QueryRow(ctx, t.d.ClaimConsumer, name, holder, until, t.s.now(), start))
	if errors.Is(err, ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, wrap("claim consumer "+name, err)
	}
	return &c, true, nil
}

func (t *tx) AdvanceConsumer(ctx context.Context, name, holder string, to int64, at time.Time) error {
	n, err := t.q.Exec(ctx, t.d.AdvanceConsumer, name, holder, to, at)
	return affected("advance consumer "+name, n, err)
}

func (t *tx) FailConsumer(ctx context.Context, name, holder, msg string, at time.Time) error {
	n, err := t.q.Exec(ctx, t.d.FailConsumer, name, holder, msg, at)
	return affected("record a failure of consumer "+name, n, err)
}

func (t *tx) DeleteConsumer(ctx context.Context, name string) error {
	_, err := t.q.Exec(ctx, t.d.DeleteConsumer, name)
	return wrap("delete consumer "+name, err)
}

func (t *tx) PruneEvents(ctx context.Context, before time.Time) (int64, error) {
	n, err := t.q.Exec(ctx, t.d.PruneEvents, before)
	return n, wrap("prune events", err)
}
