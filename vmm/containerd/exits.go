package containerd

import (
	"context"
	"fmt"
	"time"

	apievents "github.com/containerd/containerd/api/events"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/typeurl/v2"

	"hearth/vmm/guest"
)

// followExits turns containerd's /tasks/exit events into guest exits,
// resubscribing (and catching up on exits it missed) when the stream breaks,
// e.g. while the private daemon restarts.
func (h *Host) followExits() {
	defer h.events.Done()
	backoff := 100 * time.Millisecond
	for h.ctx.Err() == nil {
		ctx, cancel := context.WithCancel(h.ctx)
		events, errs := h.client.Subscribe(ctx, `topic=="/tasks/exit"`, fmt.Sprintf("namespace==%q", h.namespace))
		h.catchUp()
		func() {
			defer cancel()
			for {
				select {
				case env := <-events:
					backoff = 100 * time.Millisecond
					ev, err := typeurl.UnmarshalAny(env.Event)
					if err != nil {
						continue
					}
					if e, ok := ev.(*apievents.TaskExit); ok && e.ID == e.ContainerID {
						h.exited(guest.Exit{ID: e.ContainerID, Status: e.ExitStatus, At: e.ExitedAt.AsTime()}, e.Pid)
					}
				case err := <-errs:
					if h.ctx.Err() == nil {
						h.log.Warn("containerd events: resubscribing", "err", err, "backoff", backoff)
					}
					return
				case <-h.ctx.Done():
					return
				}
			}
		}()
		select {
		case <-time.After(backoff):
			backoff = min(backoff*2, 5*time.Second)
		case <-h.kick:
			backoff = 100 * time.Millisecond
		case <-h.ctx.Done():
		}
	}
}

// catchUp asks for the state of every guest believed running, so an exit
// missed while the event stream was down is still reported.
func (h *Host) catchUp() {
	h.mu.Lock()
	var tasks []client.Task
	for _, g := range h.guests {
		if g.task != nil && !g.exited {
			tasks = append(tasks, g.task)
		}
	}
	h.mu.Unlock()
	for _, t := range tasks {
		ctx, cancel := context.WithTimeout(h.ctx, 10*time.Second)
		st, err := t.Status(ctx)
		cancel()
		if err == nil && st.Status == client.Stopped {
			h.exited(guest.Exit{ID: t.ID(), Status: st.ExitStatus, At: st.ExitTime}, t.Pid())
		}
	}
}

// exited records the exit of the init with pid; an exit of an earlier
// incarnation of the id (a late event after Reset) does not match it.
func (h *Host) exited(e guest.Exit, pid uint32) {
	h.mu.Lock()
	g, ok := h.guests[e.ID]
	if !ok || g.exited || g.task == nil || g.task.Pid() != pid {
		h.mu.Unlock()
		return
	}
	if g.spec.VM() {
		h.mu.Unlock()
		e.Status = h.vmExitStatus(g, e.Status)
		h.mu.Lock()
	}
	g.exited, g.exit = true, e
	fn := h.onExit
	if g.deleting {
		fn = nil
	}
	h.mu.Unlock()
	g.console.CloseInput()
	if fn != nil {
		fn(e)
	}
}
