package boltstore

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	bolt "go.etcd.io/bbolt"

	"github.com/credbroker/credbroker/broker"
)

// Audit records are committed in groups. A record must be on disk before
// the call it records is answered, and a bbolt commit is an fsync (0.21 ms
// on the machine of docs/performance.md), so one transaction per record
// caps audited calls at a few thousand a second however many arrive
// together. Instead a record that finds no commit running is committed at
// once, with every record that arrived while the previous commit ran: one
// fsync for all of them, and no call waits longer than the commit before
// its own. bbolt's own Batch groups too, but holds a lone record for
// MaxBatchDelay first.

// auditQueue is the records waiting for the next commit.
type auditQueue struct {
	mu      sync.Mutex
	waiting []pendingAudit
	// committing is set while a goroutine commits; records that arrive
	// meanwhile wait for the next commit, which it starts.
	committing bool
}

type pendingAudit struct {
	value []byte
	done  chan error
}

// AppendAudit implements broker.AuditStore; it returns once the record is
// durable. Records are keyed by the bucket's sequence, so key order is the
// order they were committed in.
func (s *Store) AppendAudit(_ context.Context, rec broker.AuditRecord) error {
	v, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode audit record: %w", err)
	}
	p := pendingAudit{value: v, done: make(chan error, 1)}
	s.audit.mu.Lock()
	s.audit.waiting = append(s.audit.waiting, p)
	commit := !s.audit.committing
	s.audit.committing = true
	s.audit.mu.Unlock()
	if commit {
		s.commitAudit()
	}
	return <-p.done
}

// commitAudit commits the waiting records in one transaction. Records that
// arrived during the commit are committed by a goroutine of their own, so
// that the caller whose record started this commit is answered now.
func (s *Store) commitAudit() {
	s.audit.mu.Lock()
	group := s.audit.waiting
	s.audit.waiting = nil
	s.audit.mu.Unlock()

	err := s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(auditBucket)
		for _, p := range group {
			seq, err := b.NextSequence()
			if err != nil {
				return err
			}
			if err := b.Put(fmt.Appendf(nil, "%020d", seq), p.value); err != nil {
				return err
			}
			if seq > uint64(s.MaxEvents) {
				if err := b.Delete(fmt.Appendf(nil, "%020d", seq-uint64(s.MaxEvents))); err != nil {
					return err
				}
			}
		}
		return nil
	})
	for _, p := range group {
		p.done <- err
	}

	s.audit.mu.Lock()
	more := len(s.audit.waiting) > 0
	s.audit.committing = more
	s.audit.mu.Unlock()
	if more {
		go s.commitAudit()
	}
}

// AuditRecords implements broker.AuditStore.
func (s *Store) AuditRecords(_ context.Context, limit int) ([]broker.AuditRecord, error) {
	var out []broker.AuditRecord
	err := s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(auditBucket).Cursor()
		k, v := c.Last()
		var err error
		out, err = scan(k, v, c.Prev, limit, func(v []byte) (rec broker.AuditRecord, err error) {
			if err := json.Unmarshal(v, &rec); err != nil {
				return rec, fmt.Errorf("decode audit record: %w", err)
			}
			return rec, nil
		})
		return err
	})
	return out, err
}
