// Package inbox is the GitHub inbox runner: Runner.Accept stores a
// webhook delivery GitHub sent to any replica in the broker.Inbox at once
// (GitHub gives it 10 seconds), and Runner.Run has the leader act on the
// stored deliveries (the Refresher's Act) and mark them done.
//
// It is its own room because any replica accepts while only the leader
// runs: it imports only the broker root, and takes the action as a
// function, so it knows nothing of the Refresher.
package inbox
