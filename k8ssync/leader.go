package k8ssync

import (
	"context"
	"log/slog"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// LeaderConfig names the Lease replicas compete for.
type LeaderConfig struct {
	Namespace string
	Name      string
	// Identity of this replica, unique among replicas (the pod name).
	Identity string
	// LeaseDuration is how long a silent leader keeps the Lease: the longest
	// a crashed leader's work waits for a successor. 15s when zero.
	LeaseDuration time.Duration
	// RenewDeadline and RetryPeriod: 10s and 2s when zero.
	RenewDeadline time.Duration
	RetryPeriod   time.Duration
}

// RunAsLeader calls lead whenever this replica holds the Lease, with a
// context that ends when it stops holding it, and campaigns again after a
// loss. It returns when ctx is done, releasing the Lease so that a successor
// takes over at once rather than after LeaseDuration.
func RunAsLeader(ctx context.Context, client kubernetes.Interface, cfg LeaderConfig, log *slog.Logger, lead func(context.Context)) error {
	if cfg.LeaseDuration == 0 {
		cfg.LeaseDuration = 15 * time.Second
	}
	if cfg.RenewDeadline == 0 {
		cfg.RenewDeadline = 10 * time.Second
	}
	if cfg.RetryPeriod == 0 {
		cfg.RetryPeriod = 2 * time.Second
	}
	lock, err := resourcelock.New(resourcelock.LeasesResourceLock, cfg.Namespace, cfg.Name,
		client.CoreV1(), client.CoordinationV1(), resourcelock.ResourceLockConfig{Identity: cfg.Identity})
	if err != nil {
		return err
	}
	elector, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   cfg.LeaseDuration,
		RenewDeadline:   cfg.RenewDeadline,
		RetryPeriod:     cfg.RetryPeriod,
		ReleaseOnCancel: true,
		Name:            cfg.Name,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) {
				log.InfoContext(ctx, "leading", slog.String("identity", cfg.Identity))
				lead(ctx)
			},
			OnStoppedLeading: func() { log.Info("stopped leading", slog.String("identity", cfg.Identity)) },
			OnNewLeader: func(id string) {
				if id != cfg.Identity {
					log.Info("following", slog.String("leader", id))
				}
			},
		},
	})
	if err != nil {
		return err
	}
	for ctx.Err() == nil {
		elector.Run(ctx) // returns when leadership is lost or ctx is done
	}
	return nil
}
