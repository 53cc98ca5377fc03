package registrytoken

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/clock"

	"github.com/credbroker/credbroker/broker"
)

// robotPrefix begins every robot's user name.
const robotPrefix = "credbroker-robot."

// MinRobotKeySize is the least key the robots' passwords derive from.
const MinRobotKeySize = 32

// RobotPasswords derives and checks the robots: the per-namespace
// credentials of the in-cluster registry that the Syncer writes into each
// namespace's pull Secret. A robot's password is derived, never stored:
// HMAC-SHA256 of the namespace and the current period under a key every
// replica holds, so any replica checks it and a leak of the store leaks
// none. It rotates every period (each rotation rewrites every pull Secret:
// an hour or more suits a large cluster); the previous period's is still
// taken, so a Secret rewritten late or a kubelet's cached credential keeps
// working for one more period.
type RobotPasswords struct {
	key    []byte
	period time.Duration
	host   string
	clock  clock.PassiveClock
}

// String keeps the key out of fmt output.
func (r *RobotPasswords) String() string {
	return "Robots(" + r.host + ", every " + r.period.String() + ")"
}

// GoString keeps the key out of %#v output.
func (r *RobotPasswords) GoString() string { return r.String() }

// LogValue keeps the key out of logs.
func (r *RobotPasswords) LogValue() slog.Value {
	return slog.GroupValue(slog.String("host", r.host), slog.Duration("rotation", r.period))
}

// NewRobotPasswords returns the robots of the registry at host (as Pods
// name it in image references), rotating every period.
func NewRobotPasswords(key []byte, period time.Duration, host string, clk clock.PassiveClock) (*RobotPasswords, error) {
	if len(key) < MinRobotKeySize {
		return nil, fmt.Errorf("registry robot key: %d bytes, want at least %d", len(key), MinRobotKeySize)
	}
	if period < time.Minute {
		return nil, fmt.Errorf("registry robot rotation %s: want a minute or more", period)
	}
	if host == "" {
		return nil, errors.New("registry robots need the registry's host")
	}
	if clk == nil {
		clk = clock.RealClock{}
	}
	return &RobotPasswords{key: key, period: period, host: host, clock: clk}, nil
}

func (r *RobotPasswords) epoch(t time.Time) int64 { return t.UnixNano() / int64(r.period) }

func (r *RobotPasswords) password(namespace string, epoch int64) string {
	mac := hmac.New(sha256.New, r.key)
	mac.Write([]byte(namespace + "\x00" + strconv.FormatInt(epoch, 10))) // a hash.Hash never fails a Write
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// Robot is namespace's credential for the registry now.
func (r *RobotPasswords) Robot(namespace string) broker.RegistryAuth {
	e := r.epoch(r.clock.Now())
	return broker.RegistryAuth{Host: r.host, Username: robotPrefix + namespace + "." + strconv.FormatInt(e, 10), Password: r.password(namespace, e)}
}

// NextRotation is when Robot next answers differently.
func (r *RobotPasswords) NextRotation() time.Time {
	return time.Unix(0, (r.epoch(r.clock.Now())+1)*int64(r.period))
}

// isRobot reports whether a user name is a robot's.
func isRobot(username string) bool { return strings.HasPrefix(username, robotPrefix) }

// verify returns the namespace and period of a robot's credential of this
// period or the one before.
func (r *RobotPasswords) verify(username, password string) (string, int64, bool) {
	rest, _ := strings.CutPrefix(username, robotPrefix)
	namespace, epochText, ok := strings.Cut(rest, ".")
	epoch, err := strconv.ParseInt(epochText, 10, 64)
	if !ok || err != nil || len(validation.IsDNS1123Label(namespace)) > 0 || !r.current(epoch) {
		return "", 0, false
	}
	return namespace, epoch, hmac.Equal([]byte(password), []byte(r.password(namespace, epoch)))
}

// current reports whether a credential of the period epoch is taken now:
// it is this period's or the one before's.
func (r *RobotPasswords) current(epoch int64) bool {
	now := r.epoch(r.clock.Now())
	return epoch == now || epoch == now-1
}

// validUntil is when a credential of the period epoch stops being taken:
// the end of the period after it.
func (r *RobotPasswords) validUntil(epoch int64) time.Time {
	return time.Unix(0, (epoch+2)*int64(r.period))
}
