package dash

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// pendingStarts starts servers whose boot drive is still being imaged: the
// create page makes the drive, starts imaging it and creates the server
// stopped, and the server starts once the copy has finished. The server page
// shows the state (waiting, or why the start failed).
type pendingStarts struct {
	ctx     context.Context
	backend Backend
	log     *slog.Logger
	poll    time.Duration

	mu    sync.Mutex
	state map[string]string // server id → note for its page
	wg    sync.WaitGroup
}

func newPendingStarts(ctx context.Context, b Backend, log *slog.Logger) *pendingStarts {
	return &pendingStarts{ctx: ctx, backend: b, log: log, poll: time.Second, state: map[string]string{}}
}

// add waits, in the background, for drive to finish imaging and then starts
// server as caller.
func (p *pendingStarts) add(caller User, server, drive string) {
	p.set(server, "Waiting for the boot drive to finish imaging; the server starts then.")
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(p.poll)
		defer t.Stop()
		for {
			info, err := p.backend.DriveInfo(p.ctx, caller, drive)
			if err != nil {
				p.set(server, "Not started: the boot drive could not be read: "+errMessage(err))
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
			p.set(server, "Imaging finished, but the server could not be started: "+errMessage(err))
			return
		}
		p.set(server, "")
	}()
}

func (p *pendingStarts) set(server, note string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if note == "" {
		delete(p.state, server)
		return
	}
	p.state[server] = note
}

// note returns what the server page should say about a pending start.
func (p *pendingStarts) note(server string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.state[server]
}

// wait returns when every waiter has ended (after the context is cancelled).
func (p *pendingStarts) wait() { p.wg.Wait() }
