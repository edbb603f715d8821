// Package locks holds the rules of Kamal's deploy lock that kctl and the
// controller share: how a lock is keyed, the message a deploy's own lock
// carries, and how a held lock is described to the operator. It depends on
// the wire types only, so the CLI can use it without linking server code.
package locks

import (
	"fmt"
	"time"

	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
)

// AutomaticMessage is Kamal's message for a lock a deploy takes itself.
const AutomaticMessage = "Automatic deploy lock"

// HeldPhrase is Kamal's phrase for a lock that is already taken.
const HeldPhrase = "deploy lock already in place"

// Key is the lock's key: `<service>[-<dest>]`, as Kamal names its lock.
func Key(service, destination string) string {
	if destination == "" {
		return service
	}
	return service + "-" + destination
}

// Describe says who holds a lock, as Kamal's lock details do.
func Describe(l *deployv1.LockRecord) string {
	at := time.UnixMilli(l.GetAcquiredUnixMillis()).UTC().Format(time.RFC3339)
	msg := fmt.Sprintf("%s: locked by %s at %s", HeldPhrase, l.GetHolder(), at)
	if l.GetVersion() != "" {
		msg += ", version " + l.GetVersion()
	}
	msg += ", message: " + l.GetMessage()
	if l.GetDeployId() != "" {
		msg += " (deploy " + l.GetDeployId() + ")"
	}
	return msg
}
