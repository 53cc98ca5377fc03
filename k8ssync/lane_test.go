package k8ssync

import (
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
)

// A lane owes a namespace from the moment it is queued until a worker is
// done with it, through a retry's backoff, and not while it is queued for
// later on purpose; the queue's Len counts only the namespaces ready to be
// taken. The steps run in order on one lane.
func TestALaneOwesWhatItHoldsReconcilesAndRetries(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Now())
	l := newLane("test", clk)
	defer l.ShutDown()
	take := func(want string) {
		if ns, _ := l.Get(); ns != want {
			t.Fatalf("took %q, want %q", ns, want)
		}
	}
	for _, step := range []struct {
		name        string
		do          func()
		owed, ready int
	}{
		{"queued", func() { l.Add("a") }, 1, 1},
		{"queued twice", func() { l.Add("a") }, 1, 1},
		{"taken by a worker", func() { take("a") }, 1, 0},
		{"queued again while reconciled", func() { l.Add("a") }, 2, 0},
		{"done, the next reconcile queued", func() { l.Done("a") }, 1, 1},
		{"taken, failed, to retry", func() { take("a"); l.AddRateLimited("a"); l.Done("a") }, 1, 0},
		{"the backoff over", func() { clk.Step(time.Second) }, 1, 1},
		{"reconciled", func() { take("a"); l.Forget("a"); l.Done("a") }, 0, 0},
		{"queued for later on purpose", func() { l.AddAfter("b", time.Hour) }, 0, 0},
		{"to retry, and queued meanwhile", func() { l.AddRateLimited("c"); l.Add("c") }, 2, 1},
		{"the retry come due finds it queued", func() { clk.Step(time.Second) }, 1, 1},
		{"reconciled once", func() { take("c"); l.Done("c") }, 0, 0},
	} {
		step.do()
		if got := l.Owed(); got != int64(step.owed) || l.Len() != step.ready {
			t.Errorf("%s: owes %d with %d ready, want %d with %d ready", step.name, got, l.Len(), step.owed, step.ready)
		}
	}
}
