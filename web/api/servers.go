package api

import (
	"context"
	"errors"
	"maps"
	"strconv"
	"strings"

	"hearth/internal/ehkeys"
	"hearth/internal/hostpath"
	"hearth/storage"
	"hearth/web/eh"
)

// Server actions for ServerAction.
const (
	ActionStart    = "start"
	ActionStop     = "stop"
	ActionShutdown = "shutdown"
	ActionReset    = "reset"
	ActionPause    = "pause"
	ActionResume   = "resume"
	ActionDestroy  = "destroy"
)

// server loads a server the caller may see: their own, or any for an admin.
// Anything else is missing, exactly like a server that does not exist.
func (s *Service) server(ctx context.Context, c Caller, id string) (storage.Server, error) {
	if err := checkID("server", id); err != nil {
		return storage.Server{}, err
	}
	srv, err := s.store.Server(ctx, strings.ToLower(id))
	if errors.Is(err, storage.ErrNotFound) || err == nil && !ownerCheck(c, srv.Owner) {
		return storage.Server{}, missing("server", id)
	}
	if err != nil {
		return storage.Server{}, apiError(err)
	}
	return srv, nil
}

// serverProps is what server info shows: the stored configuration, the
// server's identity and state, the guest's runtime keys while it runs, and
// the aliases of both dialects.
func (s *Service) serverProps(ctx context.Context, srv storage.Server, full bool) eh.Props {
	p := shownProps(srv, s.runtime(ctx, srv))
	if full {
		p["host"] = s.store.HostID()
	}
	if s.guests != nil {
		if t, ok := s.guests.Transient(srv.ID); ok {
			p[eh.KeyState] = t.State
			if !t.Deadline.IsZero() {
				p[eh.KeyDeadline] = strconv.FormatInt(t.Deadline.Unix(), 10)
			}
		}
	}
	return p
}

// shownProps is server info from a stored server and its runtime keys
// (nil unless it runs). It needs no store, so set can compare an echoed info
// with it inside its transaction.
func shownProps(srv storage.Server, runtime eh.Props) eh.Props {
	stored := make(eh.Props, len(srv.Config)+6)
	maps.Copy(stored, srv.Config)
	stored["server"], stored["user"], stored["status"] = srv.ID, srv.Owner, srv.Status
	if srv.Error != "" {
		stored["error"] = srv.Error
	}
	if storage.Running(srv.Status) && !srv.Started.IsZero() {
		stored["started"] = strconv.FormatInt(srv.Started.Unix(), 10)
	}
	return eh.ServerInfo(stored, runtime)
}

// runtime returns a running server's runtime keys (from the guest layer, and
// its address from the lease or static IP); nil for a server not running.
func (s *Service) runtime(ctx context.Context, srv storage.Server) eh.Props {
	if !storage.Running(srv.Status) {
		return nil
	}
	rt := eh.Props{}
	if s.guests != nil {
		if o, ok := s.guests.Observe(ctx, srv.ID); ok {
			rt = runtimeKeys(o)
		}
	}
	if rt["nic:0:ip"] == "" && srv.Config["nic:0:dhcp"] != "" {
		if a, err := s.store.Lease(ctx, srv.ID); err == nil {
			rt["nic:0:ip"] = a.String()
		} else if ip := srv.Config["nic:0:dhcp"]; ip != "auto" {
			rt["nic:0:ip"] = ip
		}
	}
	return rt
}

// ServersInfo returns the info of every server the caller sees (all of them for an admin).
func (s *Service) ServersInfo(ctx context.Context, c Caller) ([]eh.Props, error) {
	return s.serversInfo(ctx, c, false)
}

func (s *Service) serversInfo(ctx context.Context, c Caller, full bool) ([]eh.Props, error) {
	list, err := s.visibleServers(ctx, c)
	if err != nil {
		return nil, err
	}
	out := make([]eh.Props, len(list))
	for i, srv := range list {
		out[i] = s.serverProps(ctx, srv, full)
	}
	return out, nil
}

// visibleServers lists the servers the caller sees (all of them for an admin).
func (s *Service) visibleServers(ctx context.Context, c Caller) ([]storage.Server, error) {
	owner := c.ID
	if c.Admin {
		owner = ""
	}
	list, err := s.store.Servers(ctx, owner)
	return list, apiError(err)
}

// ServerInfo returns one server's info.
func (s *Service) ServerInfo(ctx context.Context, c Caller, id string) (eh.Props, error) {
	return s.serverInfo(ctx, c, id, false)
}

func (s *Service) serverInfo(ctx context.Context, c Caller, id string, full bool) (eh.Props, error) {
	srv, err := s.server(ctx, c, id)
	if err != nil {
		return nil, err
	}
	return s.serverProps(ctx, srv, full), nil
}

// CreateServer validates a configuration, stores the server (owned by the
// caller) and, when start is set, starts it. A start the guest layer refuses
// (no runtime, a drive in use) removes the server again, leaving nothing
// behind; a guest that fails to boot leaves the server dead with its reason
// under error, and that info is the answer.
func (s *Service) CreateServer(ctx context.Context, c Caller, config eh.Props, start bool) (eh.Props, error) {
	ctx = c.asking(ctx)
	next, err := eh.NewServer(config)
	if err != nil {
		return nil, err
	}
	if err := s.checkReferences(ctx, c.ID, c.Admin, "", next, next.Keys()); err != nil {
		return nil, err
	}
	if start && s.guests == nil {
		return nil, errNoGuests(ActionStart)
	}
	srv, err := s.store.CreateServer(ctx, c.ID, next)
	if err != nil {
		return nil, apiError(err)
	}
	if start {
		startErr := s.guests.Start(ctx, srv.ID)
		cur, err := s.store.Server(ctx, srv.ID)
		if startErr != nil && (err != nil || cur.Status != storage.StatusDead) {
			// Refused (no runtime, a drive busy...): the server goes again.
			if derr := s.guests.Destroy(context.WithoutCancel(ctx), srv.ID); derr != nil && !errors.Is(derr, storage.ErrNotFound) {
				s.log.Error("server failed to start and could not be removed", "user", c.ID, "server", srv.ID, "err", derr)
			}
			return nil, apiError(startErr)
		}
		if err != nil {
			return nil, apiError(err)
		}
		// Started, or dead with the reason under error (a boot drive
		// without a filesystem): the client gets the server to look at.
		srv = cur
	}
	return s.serverProps(ctx, srv, false), nil
}

// SetServer changes a server's configuration. A stopped server takes any
// configuration key; an active (or paused) one only the live keys (name,
// cpu, persistent, tags, user:*, password), which the guest layer applies at
// once — any other changed key is 409 busy naming it. Nothing is changed
// when any part is refused. With a guest layer, whether the server is active
// is decided, and the change stored and applied, under the server's
// lifecycle lock (Guests.Set), so a start cannot run in between.
func (s *Service) SetServer(ctx context.Context, c Caller, id string, changes eh.Props) (eh.Props, error) {
	ctx = c.asking(ctx)
	srv, err := s.server(ctx, c, id)
	if err != nil {
		return nil, err
	}
	update := func(ctx context.Context, active bool) (map[string]string, error) {
		var changed eh.Props
		srv, changed, err = s.storeServerChanges(ctx, srv.ID, changes, active)
		return changed, err
	}
	if s.guests == nil {
		_, err = update(ctx, storage.Running(srv.Status))
	} else {
		err = s.guests.Set(ctx, srv.ID, update)
	}
	if err != nil {
		return nil, apiError(err)
	}
	return s.serverProps(ctx, srv, false), nil
}

// storeServerChanges validates changes to a server — in the mode of an active
// server when active is set — and stores them, returning the server as
// stored and the keys that changed.
func (s *Service) storeServerChanges(ctx context.Context, server string, changes eh.Props, active bool) (storage.Server, eh.Props, error) {
	srv, err := s.store.Server(ctx, server)
	if err != nil {
		return srv, nil, err
	}
	runtime := s.runtime(ctx, srv)
	_, changed, err := eh.UpdateServer(shownProps(srv, runtime), changes, active)
	if err != nil {
		return srv, nil, err
	}
	owner, err := s.store.User(ctx, srv.Owner)
	if err != nil {
		return srv, nil, err
	}
	if err := s.checkReferences(ctx, owner.ID, owner.Admin, srv.ID, mergeProps(srv.Config, changed), changed.Keys()); err != nil {
		return srv, nil, err
	}
	srv, err = s.store.UpdateServer(ctx, srv.ID, func(cur *storage.Server) error {
		_, ch, err := eh.UpdateServer(shownProps(*cur, runtime), changes, active)
		if err != nil {
			return err
		}
		if active && len(ch) > 0 && s.guests == nil {
			return errNoGuests("change running")
		}
		// Only the changes go into the configuration: the info it was
		// compared with also holds output and runtime keys.
		cur.Config, changed = mergeProps(cur.Config, ch), ch
		return nil
	})
	return srv, changed, err
}

func mergeProps(base, changed eh.Props) eh.Props {
	out := maps.Clone(base)
	if out == nil {
		out = eh.Props{}
	}
	for k, v := range changed {
		if v == "" {
			delete(out, k)
		} else {
			out[k] = v
		}
	}
	return out
}

// checkReferences checks the objects the given keys of a configuration refer
// to: attached drives must exist and be usable by the server's owner (their
// own, any for an admin, or a drive they may read attached as a cdrom), a
// static IP in nic:0:dhcp must be the owner's and free, a MAC in nic:N:mac
// no other server's, a VLAN in nic:1:vlan the owner's. server is the server being changed ("" when creating).
func (s *Service) checkReferences(ctx context.Context, owner string, ownerAdmin bool, server string, config eh.Props, keys []string) error {
	devices := map[string]bool{}
	for _, k := range keys {
		if ehkeys.IsDeviceKey(k) {
			devices[k] = true
		} else if dev, ok := strings.CutSuffix(k, ":media"); ok && ehkeys.IsDeviceKey(dev) {
			devices[dev] = true
		}
	}
	for _, dev := range eh.Props(boolKeys(devices)).Keys() {
		id := config[dev]
		if id == "" {
			continue
		}
		d, err := s.store.Drive(ctx, id)
		if errors.Is(err, storage.ErrNotFound) || err == nil && !ownerAdmin && !d.Readable(owner) {
			return atKey(dev, eh.Missingf("key %s: drive %s not found", dev, id))
		}
		if err != nil {
			return apiError(err)
		}
		if d.Owner != owner && !ownerAdmin && config[dev+":media"] != "cdrom" {
			return atKey(dev, eh.Usagef("key %s: %s is not yours to write; attach it with %s:media cdrom, or image a copy of it", dev, d.Label(), dev))
		}
	}
	for _, k := range keys {
		v := config[k]
		switch {
		case k == "nic:0:dhcp" && v != "" && v != "auto":
			r, err := s.store.Resource(ctx, storage.ResourceIP, v)
			if errors.Is(err, storage.ErrNotFound) || err == nil && r.Owner != owner {
				return atKey(k, eh.Missingf("key nic:0:dhcp: %s is not one of your static IPs (create one with /resources/ip/create, or use auto)", v))
			}
			if err != nil {
				return apiError(err)
			}
			users, err := s.store.ResourceUsers(ctx, storage.ResourceIP, v)
			if err != nil {
				return apiError(err)
			}
			for _, u := range users {
				if u != server {
					return atKey(k, eh.Busyf("key nic:0:dhcp: static IP %s is already used by server %s", v, s.serverLabel(ctx, u)))
				}
			}
		case k == "nic:1:vlan" && v != "":
			r, err := s.store.Resource(ctx, storage.ResourceVLAN, v)
			if errors.Is(err, storage.ErrNotFound) || err == nil && r.Owner != owner {
				return atKey(k, eh.Missingf("key nic:1:vlan: VLAN %s not found", v))
			}
			if err != nil {
				return apiError(err)
			}
		}
	}
	return nil
}

func boolKeys(m map[string]bool) eh.Props {
	p := make(eh.Props, len(m))
	for k := range m {
		p[k] = "1"
	}
	return p
}

// ServerAction runs a lifecycle action: start, stop, shutdown, reset, pause,
// resume or destroy. destroy of a stopped server needs no guest runtime; of a
// running one it stops the guest first. With a guest runtime, destroy always
// goes through it, so that it cannot interleave with a start of the server.
func (s *Service) ServerAction(ctx context.Context, c Caller, id, action string) error {
	srv, err := s.server(ctx, c, id)
	if err != nil {
		return err
	}
	status := srv.Status
	switch action {
	case ActionStart:
		if storage.Running(status) {
			return eh.Busyf("server %s is already %s", srv.Label(), status)
		}
	case ActionStop, ActionShutdown, ActionReset, ActionPause:
		if status != storage.StatusActive && !(status == storage.StatusPaused && action != ActionPause) {
			return eh.Busyf("server %s is %s, not active", srv.Label(), status)
		}
	case ActionResume:
		if status != storage.StatusPaused {
			return eh.Busyf("server %s is %s, not paused", srv.Label(), status)
		}
	case ActionDestroy:
		if !storage.Running(status) && s.guests == nil {
			return s.deleteServer(ctx, srv.ID)
		}
	default:
		return eh.Missingf("no such server command %s", action)
	}
	if s.guests == nil {
		return errNoGuests(action)
	}
	ctx = c.asking(ctx)
	if err := s.store.Record(ctx, srv.ID, "server.request", actionRequested[action]); err != nil {
		s.log.Error("recording a request", "user", c.ID, "server", srv.ID, "action", action, "err", err)
	}
	err = s.runAction(ctx, srv.ID, action)
	if err != nil && !s.failureRecorded(ctx, srv.ID, action) {
		if rerr := s.store.Record(ctx, srv.ID, "server.error", action+" failed: "+hostpath.Redact(eh.AsError(err).Message)); rerr != nil {
			s.log.Error("recording a failure", "user", c.ID, "server", srv.ID, "action", action, "err", rerr)
		}
	}
	return err
}

// actionRequested is how the activity log words each request.
var actionRequested = map[string]string{
	ActionStart: "start requested", ActionStop: "stop (power cut) requested", ActionShutdown: "shutdown requested",
	ActionReset: "reset requested", ActionPause: "pause requested", ActionResume: "resume requested",
	ActionDestroy: "destroy requested",
}

// failureRecorded reports whether a failed action's outcome is in the
// activity log already: a start that left the server dead recorded why
// with its status.
func (s *Service) failureRecorded(ctx context.Context, server, action string) bool {
	if action != ActionStart {
		return false
	}
	cur, err := s.store.Server(ctx, server)
	return err == nil && cur.Status == storage.StatusDead
}

// runAction has the guest layer run a lifecycle action, in API words.
func (s *Service) runAction(ctx context.Context, server, action string) error {
	var err error
	switch action {
	case ActionStart:
		err = s.guests.Start(ctx, server)
	case ActionStop:
		err = s.guests.Stop(ctx, server)
	case ActionShutdown:
		err = s.guests.Shutdown(ctx, server)
	case ActionReset:
		err = s.guests.Reset(ctx, server)
	case ActionPause:
		err = s.guests.Pause(ctx, server)
	case ActionResume:
		err = s.guests.Resume(ctx, server)
	case ActionDestroy:
		err = s.guests.Destroy(ctx, server)
	}
	return apiError(err)
}

// deleteServer removes a server when no guest runtime is wired (nothing can
// start it meanwhile); one already gone counts as removed.
func (s *Service) deleteServer(ctx context.Context, id string) error {
	err := s.store.DeleteServer(ctx, id)
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	return apiError(err)
}

// ServerConsole returns the last 64 KiB the guest printed on its console.
func (s *Service) ServerConsole(ctx context.Context, c Caller, id string) ([]byte, error) {
	srv, err := s.server(ctx, c, id)
	if err != nil {
		return nil, err
	}
	if s.console == nil {
		return nil, eh.Systemf("no guest runtime: no console output is kept")
	}
	out, err := s.console.ConsoleOutput(ctx, srv.ID)
	if err != nil {
		return nil, apiError(err)
	}
	return out, nil
}

// atKey names the request key an error is about (eh.Error.Key), so forms can
// show the message next to the field.
func atKey(key string, e *eh.Error) *eh.Error {
	e.Key = key
	return e
}
