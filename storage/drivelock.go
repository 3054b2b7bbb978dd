package storage

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// defaultLockWait bounds how long a drive operation waits for the one holding
// the drive: a transfer to a slow client can last long, and the caller is
// better served by 409 busy than by a request that hangs.
const defaultLockWait = 10 * time.Second

// driveLocks guards drive image files. Transfers (read, write, an imaging
// job reading its source) share a drive; whatever changes the file's length
// or starts replacing its contents (resize, start of imaging, destroy) holds
// it alone and waits for the transfers in flight to finish. Waiters are
// served in arrival order, so neither kind starves the other. An entry lives
// only while someone holds or waits for it.
type driveLocks struct {
	mu    sync.Mutex
	locks map[string]*driveLock
}

type driveLock struct {
	refs      int  // holders and waiters
	shared    int  // transfers holding the drive
	exclusive bool // held alone
	queue     []*lockWaiter
}

type lockWaiter struct {
	exclusive bool
	granted   chan struct{} // closed when the lock is the waiter's
}

// acquire takes the lock of drive id (alone when exclusive) and returns its
// release. It waits at most wait (and while ctx lives); then the drive is
// ErrBusy, naming what held it.
func (t *driveLocks) acquire(ctx context.Context, id string, exclusive bool, wait time.Duration) (func(), error) {
	t.mu.Lock()
	if t.locks == nil {
		t.locks = map[string]*driveLock{}
	}
	l := t.locks[id]
	if l == nil {
		l = &driveLock{}
		t.locks[id] = l
	}
	l.refs++
	release := func() { t.release(id, l, exclusive) }
	w := &lockWaiter{exclusive: exclusive, granted: make(chan struct{})}
	l.queue = append(l.queue, w)
	l.grant()
	t.mu.Unlock()

	timer := time.NewTimer(wait)
	defer timer.Stop()
	var err error
	select {
	case <-w.granted:
		return release, nil
	case <-timer.C:
		err = ErrBusy
	case <-ctx.Done():
		err = ctx.Err()
	}
	t.mu.Lock()
	select {
	case <-w.granted: // granted as the wait ended: give it back
		t.mu.Unlock()
		release()
		t.mu.Lock()
	default:
		for i, q := range l.queue {
			if q == w {
				l.queue = append(l.queue[:i], l.queue[i+1:]...)
				break
			}
		}
		l.grant() // those queued behind this waiter may go now
		t.drop(id, l)
	}
	if err == ErrBusy {
		holder := "being changed"
		if l.shared > 0 {
			holder = "being read or written"
		}
		err = fmt.Errorf("drive %s is %s: %w", id, holder, ErrBusy)
	}
	t.mu.Unlock()
	return nil, err
}

func (t *driveLocks) release(id string, l *driveLock, exclusive bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if exclusive {
		l.exclusive = false
	} else {
		l.shared--
	}
	l.grant()
	t.drop(id, l)
}

// grant hands the lock to the waiters at the head of the queue that it can
// serve now (t.mu held).
func (l *driveLock) grant() {
	for len(l.queue) > 0 {
		w := l.queue[0]
		switch {
		case l.exclusive, w.exclusive && l.shared > 0:
			return
		case w.exclusive:
			l.exclusive = true
		default:
			l.shared++
		}
		l.queue = l.queue[1:]
		close(w.granted)
	}
}

// drop gives up one reference to l (t.mu held).
func (t *driveLocks) drop(id string, l *driveLock) {
	if l.refs--; l.refs == 0 {
		delete(t.locks, id)
	}
}
