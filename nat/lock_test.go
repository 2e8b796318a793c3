package nat

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestLockMappingsSerialises(t *testing.T) {
	t.Setenv("NATDOCTOR_RUNTIME_DIR", t.TempDir())
	unlock, err := LockMappings(context.Background())
	if err != nil {
		t.Fatalf("lock in a fresh directory: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := LockMappings(ctx); !errors.Is(err, ErrLocked) {
		t.Fatalf("second lock while held: %v", err)
	}
	unlock()
	unlock2, err := LockMappings(context.Background())
	if err != nil {
		t.Fatalf("lock after unlock: %v", err)
	}
	unlock2()
}
