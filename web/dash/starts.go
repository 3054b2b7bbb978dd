package dash

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// pendingStarts starts servers whose boot drive is still being imaged: the
// create page makes the drive, starts imaging it and creates the server
// stopped, and the server starts once the copy has finished. The list and the
// server page show it starting meanwhile, or why the start failed.
type pendingStarts struct {
	ctx     context.Context
	backend Backend
	log     *slog.Logger
	poll    time.Duration

	mu    sync.Mutex
	state map[string]pendingStart // by server id
	wg    sync.WaitGroup
}

// pendingStart is where a start the dashboard makes stands.
type pendingStart struct {
	waiting bool   // for the boot drive's copy to finish
	failure string // why the start could not be made
}

func newPendingStarts(ctx context.Context, b Backend, log *slog.Logger) *pendingStarts {
	return &pendingStarts{ctx: ctx, backend: b, log: log, poll: time.Second, state: map[string]pendingStart{}}
}

// add waits, in the background, for drive to finish imaging and then starts
// server as caller.
func (p *pendingStarts) add(caller User, server, drive string) {
	p.set(server, pendingStart{waiting: true})
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(p.poll)
		defer t.Stop()
		for {
			info, err := p.backend.DriveInfo(p.ctx, caller, drive)
			if err != nil {
				p.set(server, pendingStart{failure: "its boot drive could not be read: " + errMessage(err)})
				return
			}
			if _, imaging := info["imaging"]; !imaging {
				break
			}
			select {
			case <-p.ctx.Done():
				p.log.Warn("server not started: Hearth stopped while its boot drive was imaging", "user", caller.ID, "server", server, "drive", drive)
				return
			case <-t.C:
			}
		}
		if err := p.backend.ServerAction(p.ctx, caller, server, "start"); err != nil {
			p.log.Error("starting a server after imaging failed", "user", caller.ID, "server", server, "drive", drive, "err", err)
			p.set(server, pendingStart{failure: "its boot drive was copied, but " + errMessage(err)})
			return
		}
		p.set(server, pendingStart{})
	}()
}

// set records where a server's start stands; the zero pendingStart forgets it.
func (p *pendingStarts) set(server string, st pendingStart) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if st == (pendingStart{}) {
		delete(p.state, server)
		return
	}
	p.state[server] = st
}

// get returns where a start the dashboard makes for the server stands.
func (p *pendingStarts) get(server string) pendingStart {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.state[server]
}

// wait returns when every waiter has ended (after the context is cancelled).
func (p *pendingStarts) wait() { p.wg.Wait() }
