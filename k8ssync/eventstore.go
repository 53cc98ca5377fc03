package k8ssync

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/credbroker/credbroker/broker"
)

// Events live beside the tenants in credbroker's own namespace, so that a
// new leader delivers the events the last one queued.
const (
	eventConfigMapPrefix = "credbroker-event-"
	labelEvent           = "credbroker.io/event"
	labelPending         = "credbroker.io/pending"
	eventKey             = "event.json"

	// DefaultMaxEvents bounds the event log in the API server: past it the
	// oldest delivered events go.
	DefaultMaxEvents = 1000
)

// AppendEvent implements broker.EventStore: one ConfigMap per event,
// labelled pending while it waits for the webhook.
func (s *Store) AppendEvent(ctx context.Context, ev broker.Event, deliver bool) error {
	data, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("encode event: %w", err)
	}
	labels := map[string]string{LabelManagedBy: ManagedByValue, labelEvent: ""}
	if deliver {
		labels[labelPending] = "true"
	}
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: eventConfigMapPrefix + ev.ID, Namespace: s.namespace, Labels: labels},
		Data:       map[string]string{eventKey: string(data)},
	}
	if _, err := s.client.CoreV1().ConfigMaps(s.namespace).Create(ctx, cm, metav1.CreateOptions{FieldManager: Component}); err != nil {
		return fmt.Errorf("store event: %w", storeError(err))
	}
	// The event is stored: trimming is housekeeping, whose failure must not
	// read as a failed append (the Notifier would raise the condition
	// again, a second copy). It lists the log, so it runs on every tenth of
	// MaxEvents appends, not on each; the log overshoots by as much.
	if s.trimDue(&s.appends) {
		_ = s.trimEvents(ctx)
	}
	return nil
}

// trimEvents deletes the oldest delivered events past MaxEvents.
func (s *Store) trimEvents(ctx context.Context) error {
	all, err := s.events(ctx, "")
	if err != nil {
		return err
	}
	excess := len(all) - s.MaxEvents
	for _, e := range all {
		if excess <= 0 {
			break
		}
		if e.pending {
			continue
		}
		err := s.client.CoreV1().ConfigMaps(s.namespace).Delete(ctx, eventConfigMapPrefix+e.ID, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("trim events: %w", err)
		}
		excess--
	}
	return nil
}

type storedEvent struct {
	broker.Event
	pending bool
}

// events lists the event log, oldest first; selector narrows it.
func (s *Store) events(ctx context.Context, selector string) ([]storedEvent, error) {
	sel := labelEvent
	if selector != "" {
		sel += "," + selector
	}
	cms, err := s.listConfigMaps(ctx, sel, "events")
	if err != nil {
		return nil, err
	}
	out := make([]storedEvent, 0, len(cms))
	for _, cm := range cms { // names are the prefix and the id: sorted by name is sorted by id
		var ev broker.Event
		if err := json.Unmarshal([]byte(cm.Data[eventKey]), &ev); err != nil || ev.ID == "" {
			return nil, fmt.Errorf("decode event ConfigMap %s/%s: not an event", cm.Namespace, cm.Name)
		}
		out = append(out, storedEvent{Event: ev, pending: cm.Labels[labelPending] == "true"})
	}
	return out, nil
}

// listConfigMaps lists credbroker's ConfigMaps that match selector, page by
// page, sorted by name; what names them in errors.
func (s *Store) listConfigMaps(ctx context.Context, selector, what string) ([]corev1.ConfigMap, error) {
	var out []corev1.ConfigMap
	opts := metav1.ListOptions{LabelSelector: LabelManagedBy + "=" + ManagedByValue + "," + selector, Limit: 500}
	for {
		page, err := s.client.CoreV1().ConfigMaps(s.namespace).List(ctx, opts)
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", what, storeError(err))
		}
		out = append(out, page.Items...)
		if opts.Continue = page.Continue; opts.Continue == "" {
			break
		}
	}
	slices.SortFunc(out, func(a, b corev1.ConfigMap) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func plain(evs []storedEvent, limit int) []broker.Event {
	out := make([]broker.Event, 0, min(limit, len(evs)))
	for _, e := range evs[:min(limit, len(evs))] {
		out = append(out, e.Event)
	}
	return out
}

// EventsAfter implements broker.EventStore.
func (s *Store) EventsAfter(ctx context.Context, afterID string, limit int) ([]broker.Event, error) {
	all, err := s.events(ctx, "")
	if err != nil {
		return nil, err
	}
	i, _ := slices.BinarySearchFunc(all, afterID, func(e storedEvent, id string) int { return strings.Compare(e.ID, id) })
	if i < len(all) && all[i].ID == afterID {
		i++
	}
	return plain(all[i:], limit), nil
}

// EventsBefore implements broker.EventStore.
func (s *Store) EventsBefore(ctx context.Context, beforeID string, limit int) ([]broker.Event, error) {
	all, err := s.events(ctx, "")
	if err != nil {
		return nil, err
	}
	i := len(all)
	if beforeID != "" {
		i, _ = slices.BinarySearchFunc(all, beforeID, func(e storedEvent, id string) int { return strings.Compare(e.ID, id) })
	}
	older := all[:i]
	slices.Reverse(older)
	return plain(older, limit), nil
}

// PendingEvents implements broker.EventStore.
func (s *Store) PendingEvents(ctx context.Context, limit int) ([]broker.Event, error) {
	pending, err := s.events(ctx, labelPending+"=true")
	if err != nil {
		return nil, err
	}
	return plain(pending, limit), nil
}

// MarkDelivered implements broker.EventStore.
func (s *Store) MarkDelivered(ctx context.Context, id string) error {
	if err := s.clearPending(ctx, eventConfigMapPrefix+id); err != nil {
		return fmt.Errorf("mark event %s delivered: %w", id, err)
	}
	return nil
}

// clearPending takes the pending label off one of credbroker's ConfigMaps
// (an event the webhook delivered, a GitHub delivery acted on).
func (s *Store) clearPending(ctx context.Context, name string) error {
	patch := []byte(`{"metadata":{"labels":{"` + labelPending + `":null}}}`)
	_, err := s.client.CoreV1().ConfigMaps(s.namespace).Patch(ctx, name, types.MergePatchType, patch,
		metav1.PatchOptions{FieldManager: Component})
	return storeError(err)
}

var (
	_ broker.CredentialStore = (*Store)(nil)
	_ broker.EventStore      = (*Store)(nil)
)
