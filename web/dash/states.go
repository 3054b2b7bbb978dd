package dash

import (
	"fmt"
	"strconv"
	"time"

	"hearth/web/eh"
)

// What a server is doing, as the list, its page and the flashes waiting on
// it name it: its status, or the passing state the API reports beside it
// (eh.KeyState), or a start the dashboard itself waits to make.
const (
	stateStarting     = "starting"
	stateShuttingDown = "shutting-down"
	stateStartFailed  = "start-failed"
)

// serverState is what a server is doing now, in the dashboard's words.
type serverState struct {
	State  string // the status, or starting, shutting-down, start-failed
	Label  string // the badge: "shutting down (42 s left)", "start failed", "active"
	Detail string // words beside it: why a start failed, what a start waits for
	Left   string // while shutting down, the time left before the kill: "42 s left"
}

// stateOf says what the server whose info is p is doing at now.
func (d *Dashboard) stateOf(p eh.Props, now time.Time) serverState {
	status := p["status"]
	s := serverState{State: status, Label: status}
	switch {
	case p[eh.KeyState] == stateShuttingDown:
		s.State, s.Label = stateShuttingDown, "shutting down"
		if sec, err := strconv.ParseInt(p[eh.KeyDeadline], 10, 64); err == nil {
			left := max(time.Unix(sec, 0).Sub(now), 0)
			s.Left = strconv.FormatInt(int64((left+time.Second-1)/time.Second), 10) + " s left"
			s.Label += " (" + s.Left + ")"
		}
	case p[eh.KeyState] == stateStarting:
		s.State, s.Label = stateStarting, "starting"
	case status == "dead":
		s.State, s.Label, s.Detail = stateStartFailed, "start failed", p["error"]
	default:
		switch pending := d.starts.get(p["server"]); {
		case pending.waiting:
			s.State, s.Label, s.Detail = stateStarting, "starting", "waiting for its boot drive to be copied"
		case pending.failure != "":
			s.State, s.Label, s.Detail = stateStartFailed, "start failed", pending.failure
		}
	}
	return s
}

// serverActions lists the lifecycle buttons that make sense in a state.
// Shutting down, only Stop (the power cut) is left; starting, nothing.
func serverActions(state string) []string {
	switch state {
	case "active":
		return []string{"shutdown", "stop", "reset", "pause"}
	case "paused":
		return []string{"resume", "stop"}
	case stateShuttingDown:
		return []string{"stop"}
	case stateStarting:
		return nil
	default:
		return []string{"start"}
	}
}

// awaited lists the actions whose end comes after the request: the flash
// announcing one stays, following the server's state, until one of states
// (or the server's removal) has come, and then says done (%s: its name) —
// or failed, where set, when the server's start failed or it is gone.
var awaited = map[string]struct{ pending, states, done, failed string }{
	"shutdown": {"Shutting down server %s…", "stopped", "Server %s shut down.", ""},
	"start":    {"Starting server %s…", "active", "Server %s started.", "Server %s could not start: its page says why."},
}

// awaitFor is the awaiting flash of action on the server id named name.
func awaitFor(action, id, name string) (flash, bool) {
	a, ok := awaited[action]
	if !ok {
		return flash{}, false
	}
	f := flash{Kind: "info", Message: fmt.Sprintf(a.pending, name), Await: &awaitFlash{Server: id, States: a.states, Done: fmt.Sprintf(a.done, name)}}
	if a.failed != "" {
		f.Await.Failed = fmt.Sprintf(a.failed, name)
	}
	return f, true
}

// askStop asks before a power cut (Stop's page, and a stop form sent
// without confirmation), pointing at the clean way.
func (d *Dashboard) askStop(rq *request, info eh.Props, back string) {
	render(rq.w, rq.Request, confirmPage(d.pageData(rq, "Stop server", "servers"), confirmation{
		Question: "Stop server " + info["name"] + " now?",
		Detail:   "Stop cuts the power: the guest gets no chance to save its work, and files it was writing may be damaged. Shut down asks it to power off cleanly instead.",
		Action:   "/ui/servers/" + info["server"] + "/stop",
		Button:   "Stop server",
		Back:     back,
	}))
}
