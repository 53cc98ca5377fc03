package boltstore

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/credbroker/credbroker/broker"
)

// The GitHub delivery inbox: deliveries in arrival order (sequence →
// delivery, with a done flag), and the keys seen (broker.Delivery.Key →
// sequence), bounded by MaxDeliveries.
var (
	deliveriesBucket  = []byte("deliveries")
	deliveryIDsBucket = []byte("delivery-ids")
)

// DefaultMaxDeliveries is how many deliveries the inbox remembers for
// deduplication (GitHub redelivers by hand, attackers replay at will).
const DefaultMaxDeliveries = 10000

type storedDelivery struct {
	broker.Delivery
	Done bool `json:"done"`
}

func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

// AddDelivery implements broker.Inbox.
func (s *Store) AddDelivery(_ context.Context, d broker.Delivery) (added bool, err error) {
	err = s.update(func(tx *bolt.Tx) error {
		ids, all := tx.Bucket(deliveryIDsBucket), tx.Bucket(deliveriesBucket)
		if ids.Get([]byte(d.Key())) != nil {
			return nil
		}
		seq, err := all.NextSequence()
		if err != nil {
			return err
		}
		v, err := json.Marshal(storedDelivery{Delivery: d})
		if err != nil {
			return fmt.Errorf("encode delivery: %w", err)
		}
		if err := all.Put(seqKey(seq), v); err != nil {
			return err
		}
		if err := ids.Put([]byte(d.Key()), seqKey(seq)); err != nil {
			return err
		}
		added = true
		return trimDeliveries(all, ids, s.maxDeliveries())
	})
	return added, err
}

// trimDeliveries forgets the oldest finished deliveries past max; pending
// ones stay whatever their number.
func trimDeliveries(all, ids *bolt.Bucket, keep int) error {
	excess := all.Stats().KeyN - keep
	c := all.Cursor()
	for k, v := c.First(); k != nil && excess > 0; k, v = c.Next() {
		var d storedDelivery
		if err := json.Unmarshal(v, &d); err != nil {
			return fmt.Errorf("decode delivery: %w", err)
		}
		if !d.Done {
			continue
		}
		if err := ids.Delete([]byte(d.Key())); err != nil {
			return err
		}
		if err := c.Delete(); err != nil {
			return err
		}
		excess--
	}
	return nil
}

func (s *Store) maxDeliveries() int {
	if s.MaxDeliveries == 0 {
		return DefaultMaxDeliveries
	}
	return s.MaxDeliveries
}

// PendingDeliveries implements broker.Inbox.
func (s *Store) PendingDeliveries(_ context.Context, limit int) ([]broker.Delivery, error) {
	var out []broker.Delivery
	err := s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(deliveriesBucket).Cursor()
		for k, v := c.First(); k != nil && len(out) < limit; k, v = c.Next() {
			var d storedDelivery
			if err := json.Unmarshal(v, &d); err != nil {
				return fmt.Errorf("decode delivery: %w", err)
			}
			if !d.Done {
				out = append(out, d.Delivery)
			}
		}
		return nil
	})
	return out, err
}

// FinishDelivery implements broker.Inbox.
func (s *Store) FinishDelivery(_ context.Context, deliveryKey string) error {
	return s.update(func(tx *bolt.Tx) error {
		key := tx.Bucket(deliveryIDsBucket).Get([]byte(deliveryKey))
		if key == nil {
			return broker.ErrNotFound
		}
		all := tx.Bucket(deliveriesBucket)
		var d storedDelivery
		if err := json.Unmarshal(all.Get(key), &d); err != nil {
			return fmt.Errorf("decode delivery: %w", err)
		}
		d.Done = true
		v, err := json.Marshal(d)
		if err != nil {
			return err
		}
		return all.Put(key, v)
	})
}
