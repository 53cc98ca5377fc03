package k8ssync

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/credbroker/credbroker/broker"
)

const (
	auditConfigMapPrefix = "credbroker-audit-"
	labelAudit           = "credbroker.io/audit"
	auditKey             = "record.json"
)

// AppendAudit implements broker.AuditStore: one ConfigMap per record, named
// by its time so that names sort like records, trimmed to MaxEvents.
// Trimming lists the whole trail, so, as for events, it runs on every tenth
// of MaxEvents appends, not on each audited call; the trail overshoots by
// as much, and a failed trim is not a failed append: the record is stored.
func (s *Store) AppendAudit(ctx context.Context, rec broker.AuditRecord) error {
	data, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode audit record: %w", err)
	}
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{
			Name:      fmt.Sprintf("%s%016x-%s", auditConfigMapPrefix, rec.Time.UnixNano(), strings.ToLower(rand.Text()[:6])),
			Namespace: s.namespace,
			Labels:    map[string]string{LabelManagedBy: ManagedByValue, labelAudit: ""},
		},
		Data: map[string]string{auditKey: string(data)},
	}
	if _, err := s.client.CoreV1().ConfigMaps(s.namespace).Create(ctx, cm, metav1.CreateOptions{FieldManager: Component}); err != nil {
		return fmt.Errorf("store audit record: %w", storeError(err))
	}
	if s.trimDue(&s.auditAppends) {
		_ = s.trimAudit(ctx)
	}
	return nil
}

// trimAudit deletes the oldest records past MaxEvents.
func (s *Store) trimAudit(ctx context.Context) error {
	all, err := s.listConfigMaps(ctx, labelAudit, "audit trail")
	if err != nil {
		return err
	}
	for _, cm := range all[:max(0, len(all)-s.MaxEvents)] {
		if err := s.client.CoreV1().ConfigMaps(s.namespace).Delete(ctx, cm.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("trim audit trail: %w", err)
		}
	}
	return nil
}

// AuditRecords implements broker.AuditStore.
func (s *Store) AuditRecords(ctx context.Context, limit int) ([]broker.AuditRecord, error) {
	all, err := s.listConfigMaps(ctx, labelAudit, "audit trail")
	if err != nil {
		return nil, err
	}
	var out []broker.AuditRecord
	for _, cm := range slices.Backward(all) {
		if len(out) == limit {
			break
		}
		var rec broker.AuditRecord
		if err := json.Unmarshal([]byte(cm.Data[auditKey]), &rec); err != nil {
			return nil, fmt.Errorf("decode audit ConfigMap %s: %w", cm.Name, err)
		}
		out = append(out, rec)
	}
	return out, nil
}

var _ broker.AuditStore = (*Store)(nil)
