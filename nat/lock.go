package nat

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// lockPollInterval is how often a waiting natdoctor retries the lock.
const lockPollInterval = 50 * time.Millisecond

// LockMappings serialises mapping changes between natdoctor processes on
// this host (a keep service and an ad hoc add, say): without it, one run's
// roll-back could remove mappings that another run had just made, since a
// router cannot tell a renewal from a creation. It waits until the lock is
// free or ctx ends. The lock file is natdoctor-mappings.lock in RuntimeDir.
// A lock file that cannot be opened (permissions) is not an error: the
// caller goes on unlocked, and the returned error says so.
func LockMappings(ctx context.Context) (unlock func(), err error) {
	dir := RuntimeDir()
	_ = os.MkdirAll(dir, 0o755)
	path := filepath.Join(dir, "natdoctor-mappings.lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		return func() {}, fmt.Errorf("no mapping lock (%v): concurrent natdoctor runs are not serialised", err)
	}
	_ = f.Chmod(0o666) // shared between users; umask may have narrowed it
	for {
		ok, lerr := tryLock(f)
		if lerr != nil {
			f.Close()
			return func() {}, fmt.Errorf("no mapping lock (%v): concurrent natdoctor runs are not serialised", lerr)
		}
		if ok {
			return func() { unlockFile(f); f.Close() }, nil
		}
		t := time.NewTimer(lockPollInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			f.Close()
			return nil, fmt.Errorf("waiting for another natdoctor changing mappings: %w", errors.Join(ErrLocked, ctx.Err()))
		case <-t.C:
		}
	}
}

// ErrLocked means another natdoctor held the mapping lock until ctx ended.
var ErrLocked = errors.New("mappings are being changed by another natdoctor")
