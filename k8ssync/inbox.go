package k8ssync

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/credbroker/credbroker/broker"
)

// GitHub deliveries live beside the event log: a ConfigMap each, named by
// the hash of the delivery's key, broker.Delivery.Key (so that the API
// server refuses a second one, under whatever delivery id it came),
// labelled pending until the leader has acted on it.
const (
	deliveryConfigMapPrefix = "credbroker-delivery-"
	labelDelivery           = "credbroker.io/delivery"
	deliveryKey             = "delivery.json"

	// DefaultMaxDeliveries is how many deliveries the inbox remembers for
	// deduplication.
	DefaultMaxDeliveries = 1000
)

func deliveryName(key string) string {
	sum := sha256.Sum256([]byte(key))
	return deliveryConfigMapPrefix + hex.EncodeToString(sum[:10])
}

// AddDelivery implements broker.Inbox.
func (s *Store) AddDelivery(ctx context.Context, d broker.Delivery) (bool, error) {
	data, err := json.Marshal(d)
	if err != nil {
		return false, fmt.Errorf("encode delivery: %w", err)
	}
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: deliveryName(d.Key()), Namespace: s.namespace,
			Labels: map[string]string{LabelManagedBy: ManagedByValue, labelDelivery: "", labelPending: "true"}},
		Data: map[string]string{deliveryKey: string(data)},
	}
	_, err = s.client.CoreV1().ConfigMaps(s.namespace).Create(ctx, cm, metav1.CreateOptions{FieldManager: Component})
	if apierrors.IsAlreadyExists(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("store delivery: %w", storeError(err))
	}
	// Forgetting old deliveries is housekeeping: the delivery is stored
	// whether or not it succeeds, and the next one tries again.
	_ = s.trimDeliveries(ctx)
	return true, nil
}

// trimDeliveries forgets the oldest finished deliveries past the bound.
func (s *Store) trimDeliveries(ctx context.Context) error {
	done, err := s.deliveries(ctx, "!"+labelPending)
	if err != nil {
		return err
	}
	keep := s.MaxDeliveries
	if keep == 0 {
		keep = DefaultMaxDeliveries
	}
	for _, d := range done[:max(0, len(done)-keep)] {
		err := s.client.CoreV1().ConfigMaps(s.namespace).Delete(ctx, deliveryName(d.Key()), metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("forget delivery: %w", err)
		}
	}
	return nil
}

// deliveries lists stored deliveries that match selector, oldest first.
func (s *Store) deliveries(ctx context.Context, selector string) ([]broker.Delivery, error) {
	cms, err := s.listConfigMaps(ctx, labelDelivery+","+selector, "GitHub deliveries")
	if err != nil {
		return nil, err
	}
	out := make([]broker.Delivery, 0, len(cms))
	for _, cm := range cms {
		var d broker.Delivery
		if err := json.Unmarshal([]byte(cm.Data[deliveryKey]), &d); err != nil || d.ID == "" {
			return nil, fmt.Errorf("decode delivery ConfigMap %s/%s: not a delivery", cm.Namespace, cm.Name)
		}
		out = append(out, d)
	}
	slices.SortStableFunc(out, func(a, b broker.Delivery) int { return a.Received.Compare(b.Received) })
	return out, nil
}

// PendingDeliveries implements broker.Inbox.
func (s *Store) PendingDeliveries(ctx context.Context, limit int) ([]broker.Delivery, error) {
	pending, err := s.deliveries(ctx, labelPending+"=true")
	if err != nil {
		return nil, err
	}
	return pending[:min(limit, len(pending))], nil
}

// FinishDelivery implements broker.Inbox.
func (s *Store) FinishDelivery(ctx context.Context, key string) error {
	if err := s.clearPending(ctx, deliveryName(key)); err != nil {
		return fmt.Errorf("finish delivery %s: %w", key, err)
	}
	return nil
}

var _ broker.Inbox = (*Store)(nil)
