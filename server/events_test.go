package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/credbroker/credbroker/broker/notify"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/credbroker/credbroker/broker"
	"github.com/credbroker/credbroker/internal/testenv"
	credbrokerv1 "github.com/credbroker/credbroker/proto/credbroker/v1"
	"github.com/credbroker/credbroker/server"
)

func raise(t *testing.T, in *instance, typ broker.EventType, tenant string) {
	t.Helper()
	ev := broker.Event{Type: typ, TenantID: tenant, Severity: broker.SeverityWarning, Reason: broker.ReasonGitHubUnavailable,
		Message: string(typ) + " of " + tenant, DedupeKey: broker.ConditionKey(tenant + "/" + string(typ))}
	if !in.notifier.Raise(context.Background(), ev) {
		t.Fatalf("raise %s for %s: not written", typ, tenant)
	}
}

func TestListEvents(t *testing.T) {
	in := start(t, t.TempDir(), server.Services{})
	raise(t, in, broker.EventCredentialRefreshFailed, "a")
	raise(t, in, broker.EventProbeFailed, "b")
	raise(t, in, broker.EventCredentialRevoked, "a")
	raise(t, in, broker.EventSyncFailed, "a")
	raise(t, in, broker.EventProbeFailed, "c")
	events := credbrokerv1.NewEventServiceClient(in.conn)
	ctx := context.Background()

	summary := func(evs []*credbrokerv1.Event) []string {
		var out []string
		for _, ev := range evs {
			out = append(out, ev.GetType().String()[len("EVENT_TYPE_"):]+" "+ev.GetTenantId())
		}
		return out
	}
	tests := []struct {
		name string
		req  *credbrokerv1.ListEventsRequest
		want []string
	}{
		{"all, newest first", &credbrokerv1.ListEventsRequest{},
			[]string{"PROBE_FAILED c", "SYNC_FAILED a", "CREDENTIAL_REVOKED a", "PROBE_FAILED b", "CREDENTIAL_REFRESH_FAILED a"}},
		{"one tenant", &credbrokerv1.ListEventsRequest{TenantId: "a"},
			[]string{"SYNC_FAILED a", "CREDENTIAL_REVOKED a", "CREDENTIAL_REFRESH_FAILED a"}},
		{"one type", &credbrokerv1.ListEventsRequest{Types: []credbrokerv1.EventType{credbrokerv1.EventType_EVENT_TYPE_PROBE_FAILED}},
			[]string{"PROBE_FAILED c", "PROBE_FAILED b"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := events.ListEvents(ctx, tc.req)
			if err != nil {
				t.Fatal(err)
			}
			if got := summary(resp.GetEvents()); !slices.Equal(got, tc.want) {
				t.Errorf("events %v, want %v", got, tc.want)
			}
		})
	}

	t.Run("pages", func(t *testing.T) {
		var got []string
		token := ""
		for pages := 0; ; pages++ {
			resp, err := events.ListEvents(ctx, &credbrokerv1.ListEventsRequest{TenantId: "a", PageSize: 2, PageToken: token})
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, summary(resp.GetEvents())...)
			if token = resp.GetNextPageToken(); token == "" || pages > 3 {
				break
			}
		}
		if want := []string{"SYNC_FAILED a", "CREDENTIAL_REVOKED a", "CREDENTIAL_REFRESH_FAILED a"}; !slices.Equal(got, want) {
			t.Errorf("paged %v, want %v", got, want)
		}
	})

	t.Run("over REST", func(t *testing.T) {
		code, body := in.do(t, http.MethodGet, "/v1/events?tenantId=b", "")
		evs, _ := body["events"].([]any)
		if code != http.StatusOK || len(evs) != 1 {
			t.Fatalf("%d %v", code, body)
		}
		ev := evs[0].(map[string]any)
		if ev["type"] != "EVENT_TYPE_PROBE_FAILED" || ev["severity"] != "SEVERITY_WARNING" || ev["reason"] != "REASON_GITHUB_UNAVAILABLE" ||
			ev["dedupeKey"] != "b/PROBE_FAILED" || ev["createTime"] == nil {
			t.Errorf("event %v", ev)
		}
	})

	t.Run("bad arguments name the field", func(t *testing.T) {
		_, err := events.ListEvents(ctx, &credbrokerv1.ListEventsRequest{PageSize: -1})
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("negative page size: %v", err)
		}
	})
}

func TestWatchEvents(t *testing.T) {
	in := start(t, t.TempDir(), server.Services{})
	raise(t, in, broker.EventCredentialRefreshFailed, "a")
	events := credbrokerv1.NewEventServiceClient(in.conn)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// A new watch sees new events only, as they happen.
	stream, err := events.WatchEvents(ctx, &credbrokerv1.WatchEventsRequest{TenantId: "a"})
	if err != nil {
		t.Fatal(err)
	}
	// The headers say the watch is in place; an event raised after that
	// must arrive without waiting for the poll (a minute here).
	if _, err := stream.Header(); err != nil {
		t.Fatal(err)
	}
	raise(t, in, broker.EventProbeFailed, "b") // filtered out
	raise(t, in, broker.EventCredentialRevoked, "a")
	got, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if got.GetType() != credbrokerv1.EventType_EVENT_TYPE_CREDENTIAL_REVOKED || got.GetTenantId() != "a" {
		t.Fatalf("first watched event %v", got)
	}

	// A watch resumed after the first event replays the rest.
	first, err := events.ListEvents(ctx, &credbrokerv1.ListEventsRequest{TenantId: "a", PageSize: 10})
	if err != nil {
		t.Fatal(err)
	}
	oldest := first.GetEvents()[len(first.GetEvents())-1].GetId()
	resumed, err := events.WatchEvents(ctx, &credbrokerv1.WatchEventsRequest{AfterId: oldest})
	if err != nil {
		t.Fatal(err)
	}
	var replayed []string
	for range 2 {
		ev, err := resumed.Recv()
		if err != nil {
			t.Fatal(err)
		}
		replayed = append(replayed, ev.GetTenantId()+" "+ev.GetType().String())
	}
	if want := []string{"b EVENT_TYPE_PROBE_FAILED", "a EVENT_TYPE_CREDENTIAL_REVOKED"}; !slices.Equal(replayed, want) {
		t.Errorf("replayed %v, want %v", replayed, want)
	}

	// Over REST the stream is newline-delimited JSON.
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, in.baseURL+"/v1/events:watch?afterId="+oldest+"&tenantId=a", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	line, err := bufio.NewReader(resp.Body).ReadBytes('\n')
	if err != nil {
		t.Fatal(err)
	}
	var msg struct {
		Result map[string]any `json:"result"`
	}
	if err := json.Unmarshal(line, &msg); err != nil || msg.Result["type"] != "EVENT_TYPE_CREDENTIAL_REVOKED" {
		t.Errorf("REST stream line %s: %v", line, err)
	}

	bad, err := events.WatchEvents(ctx, &credbrokerv1.WatchEventsRequest{AfterId: "not-an-id"})
	if err == nil {
		_, err = bad.Recv()
	}
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("watch after a bad id: %v", err)
	}
}

// One identity holds at most MaxStreamsPerCaller watches open; others are
// not affected, and a closed watch frees its place.
func TestWatchesAreCappedPerCaller(t *testing.T) {
	in := start(t, t.TempDir(), server.Services{}, withGuard(nil))
	createWeb(t, in)
	events := credbrokerv1.NewEventServiceClient(in.conn)
	watch := func(ctx context.Context, token string) error {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
		stream, err := events.WatchEvents(ctx, &credbrokerv1.WatchEventsRequest{TenantId: "web"})
		if err != nil {
			return err
		}
		md, err := stream.Header()   // the watch is in place, or refused
		if err == nil && md == nil { // ended without headers: the status says why
			_, err = stream.Recv()
		}
		return err
	}
	reader, admin := matrixTokens["tenant-reader:web"].Token, matrixTokens["admin"].Token
	var cancels []context.CancelFunc
	defer func() {
		for _, c := range cancels {
			c()
		}
	}()
	for i := range server.MaxStreamsPerCaller {
		ctx, cancel := context.WithCancel(context.Background())
		cancels = append(cancels, cancel)
		if err := watch(ctx, reader); err != nil {
			t.Fatalf("watch %d: %v", i+1, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := watch(ctx, reader); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("one watch past the cap: %v, want ResourceExhausted", err)
	}
	if err := watch(ctx, admin); err != nil {
		t.Errorf("another caller's watch: %v", err)
	}
	cancels[0]()
	testenv.Eventually(t, 10*time.Second, func() (bool, string) {
		err := watch(ctx, reader)
		return err == nil, testenv.Errorf("after closing one: %v", err)
	})
}

// TestAWatchSeesAnEventAnotherReplicaWroteLate: another replica's clock is
// behind, so its event's id sorts before one the watch has sent already;
// the watch still sends it, once.
func TestAWatchSeesAnEventAnotherReplicaWroteLate(t *testing.T) {
	in := start(t, t.TempDir(), server.Services{})
	events := credbrokerv1.NewEventServiceClient(in.conn)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := events.WatchEvents(ctx, &credbrokerv1.WatchEventsRequest{TenantId: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Header(); err != nil {
		t.Fatal(err)
	}
	raise(t, in, broker.EventCredentialRevoked, "a")
	first, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	behind := clocktesting.NewFakePassiveClock(time.Now().Add(-3 * time.Second))
	follower := notify.NewNotifier(in.store, false, behind, nil, slog.New(slog.DiscardHandler))
	if !follower.Raise(ctx, broker.Event{Type: broker.EventPullDenied, TenantID: "a", Namespace: "web", Severity: broker.SeverityWarning,
		Message: "denied", DedupeKey: "a/pull-denied/web"}) {
		t.Fatal("the follower's event was not written")
	}
	in.notifier.Raise(ctx, broker.Event{Type: broker.EventProbeFailed, TenantID: "a", Severity: broker.SeverityWarning, DedupeKey: "a/probe"}) // wakes the watch
	var got []string
	for range 2 {
		ev, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ev.GetType().String())
		if ev.GetId() >= first.GetId() && ev.GetType() == credbrokerv1.EventType_EVENT_TYPE_PULL_DENIED {
			t.Fatalf("the follower's event %s does not sort before %s: the test proves nothing", ev.GetId(), first.GetId())
		}
	}
	slices.Sort(got)
	if want := []string{"EVENT_TYPE_PROBE_FAILED", "EVENT_TYPE_PULL_DENIED"}; !slices.Equal(got, want) {
		t.Errorf("watched %v, want %v", got, want)
	}
}
