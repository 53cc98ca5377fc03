package api

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/credbroker/credbroker/broker/notify"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"
	"k8s.io/utils/clock"

	"github.com/credbroker/credbroker/broker"
	credbrokerv1 "github.com/credbroker/credbroker/proto/credbroker/v1"
)

// EventAPI serves credbroker.v1.EventService from the event log. Every
// replica can serve it: the log lives in the Store, and watchers poll it
// (besides being woken at once by appends on this replica).
type EventAPI struct {
	credbrokerv1.UnimplementedEventServiceServer
	store    broker.EventStore
	appended func() <-chan struct{}
	clock    clock.WithTicker
	poll     time.Duration
	log      *slog.Logger
}

// NewEventAPI returns the EventService. appended, if not nil, returns a
// channel closed at the next event written on this replica; poll is how
// often watchers read the log regardless (events written by the leader
// when this replica does not lead), on clk (the real clock when nil).
func NewEventAPI(store broker.EventStore, appended func() <-chan struct{}, poll time.Duration, clk clock.WithTicker, log *slog.Logger) *EventAPI {
	if appended == nil {
		appended = func() <-chan struct{} { return nil }
	}
	if clk == nil {
		clk = clock.RealClock{}
	}
	return &EventAPI{store: store, appended: appended, clock: clk, poll: poll, log: log}
}

const (
	defaultEventPage = 100
	maxEventPage     = 1000
)

// eventFilter is a request's tenant and type filter.
type eventFilter struct {
	tenantID string
	types    []broker.EventType
}

func (f eventFilter) match(ev broker.Event) bool {
	return (f.tenantID == "" || ev.TenantID == f.tenantID) && (len(f.types) == 0 || slices.Contains(f.types, ev.Type))
}

func parseEventFilter(tenantID string, types []credbrokerv1.EventType) (eventFilter, []broker.FieldViolation) {
	f := eventFilter{tenantID: tenantID}
	var vs []broker.FieldViolation
	if tenantID != "" {
		if err := requireID("tenant_id", tenantID); err != nil {
			vs = append(vs, broker.FieldViolation{Field: "tenant_id", Description: "not a tenant id"})
		}
	}
	for i, t := range types {
		typ := eventTypes.domain(t)
		if typ == "" {
			vs = append(vs, broker.FieldViolation{Field: fmt.Sprintf("types[%d]", i), Description: "not an event type"})
			continue
		}
		f.types = append(f.types, typ)
	}
	return f, vs
}

// ListEvents implements credbroker.v1.EventService.
func (a *EventAPI) ListEvents(ctx context.Context, req *credbrokerv1.ListEventsRequest) (*credbrokerv1.ListEventsResponse, error) {
	filter, vs := parseEventFilter(req.GetTenantId(), req.GetTypes())
	size := int(req.GetPageSize())
	switch {
	case size == 0:
		size = defaultEventPage
	case size < 0 || size > maxEventPage:
		vs = append(vs, broker.FieldViolation{Field: "page_size", Description: fmt.Sprintf("must be between 0 and %d", maxEventPage)})
	}
	if tok := req.GetPageToken(); tok != "" && !notify.ValidEventID(tok) {
		vs = append(vs, broker.FieldViolation{Field: "page_token", Description: "not a page token of this API"})
	}
	if len(vs) > 0 {
		return nil, invalidArgument("", vs...)
	}
	resp := &credbrokerv1.ListEventsResponse{}
	before := req.GetPageToken()
	for {
		page, err := a.store.EventsBefore(ctx, before, maxEventPage)
		if err != nil {
			return nil, toStatus(ctx, a.log, fmt.Errorf("list events: %w", err), "")
		}
		for _, ev := range page {
			before = ev.ID
			if !filter.match(ev) {
				continue
			}
			if len(resp.Events) == size {
				resp.NextPageToken = resp.Events[size-1].GetId()
				return resp, nil
			}
			resp.Events = append(resp.Events, eventToProto(ev))
		}
		if len(page) < maxEventPage {
			return resp, nil
		}
	}
}

// WatchEvents implements credbroker.v1.EventService.
func (a *EventAPI) WatchEvents(req *credbrokerv1.WatchEventsRequest, stream grpc.ServerStreamingServer[credbrokerv1.Event]) error {
	ctx := stream.Context()
	filter, vs := parseEventFilter(req.GetTenantId(), req.GetTypes())
	after := req.GetAfterId()
	if after != "" && !notify.ValidEventID(after) {
		vs = append(vs, broker.FieldViolation{Field: "after_id", Description: "not an event id"})
	}
	if len(vs) > 0 {
		return invalidArgument("", vs...)
	}
	if after == "" { // new events only: start after the newest
		newest, err := a.store.EventsBefore(ctx, "", 1)
		if err != nil {
			return toStatus(ctx, a.log, fmt.Errorf("watch events: %w", err), "")
		}
		if len(newest) > 0 {
			after = newest[0].ID
		}
	}
	// Headers tell the client the watch is in place: whatever happens from
	// now on reaches it.
	if err := stream.SendHeader(nil); err != nil {
		return err
	}
	tail := newEventTail(a.store, a.appended, a.clock, a.poll, after)
	defer tail.stop()
	for {
		for ev, err := range tail.read(ctx) {
			if err != nil {
				return toStatus(ctx, a.log, fmt.Errorf("watch events: %w", err), "")
			}
			if !filter.match(ev) {
				continue
			}
			if err := stream.Send(eventToProto(ev)); err != nil {
				return err
			}
		}
		if !tail.wait(ctx) {
			return nil
		}
	}
}

// EventJSON renders an event as the API renders it (protojson), for the
// webhook's request bodies.
func EventJSON(ev broker.Event) ([]byte, error) { return protojson.Marshal(eventToProto(ev)) }

func eventToProto(ev broker.Event) *credbrokerv1.Event {
	return &credbrokerv1.Event{
		Id:         ev.ID,
		Type:       eventTypes.proto(ev.Type),
		TenantId:   ev.TenantID,
		Namespace:  ev.Namespace,
		Registry:   ev.Registry,
		Severity:   severities.proto(ev.Severity),
		Reason:     reasons.proto(ev.Reason),
		Message:    ev.Message,
		DedupeKey:  string(ev.DedupeKey),
		CreateTime: timestamp(ev.Time),
	}
}
