package api

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"hearth/storage"
	"hearth/web/eh"
)

func callerOf(u storage.User) Caller { return Caller{ID: u.ID, Name: u.Name, Admin: u.Admin} }

// Authenticate checks a login (user UUID or name) and secret, as HTTP Basic
// auth does. Any failure is 401 auth.
func (s *Service) Authenticate(ctx context.Context, login, secret string) (Caller, error) {
	u, err := s.store.Authenticate(ctx, login, secret)
	if errors.Is(err, storage.ErrAuth) {
		return Caller{}, eh.Authf("wrong user or secret key")
	}
	if err != nil {
		return Caller{}, apiError(err)
	}
	return callerOf(u), nil
}

// User reloads a user by UUID (a dashboard session); a removed user is 401 auth.
func (s *Service) User(ctx context.Context, id string) (Caller, error) {
	u, err := s.store.User(ctx, id)
	if errors.Is(err, storage.ErrNotFound) {
		return Caller{}, eh.Authf("user %s no longer exists", id)
	}
	if err != nil {
		return Caller{}, apiError(err)
	}
	return callerOf(u), nil
}

func adminOnly(c Caller) error {
	if !c.Admin {
		return eh.Authf("only an admin manages users")
	}
	return nil
}

// Users lists every user (admins only).
func (s *Service) Users(ctx context.Context, caller Caller) ([]Caller, error) {
	if err := adminOnly(caller); err != nil {
		return nil, err
	}
	users, err := s.store.Users(ctx)
	if err != nil {
		return nil, apiError(err)
	}
	out := make([]Caller, len(users))
	for i, u := range users {
		out[i] = callerOf(u)
	}
	return out, nil
}

// CreateUser adds a user (admins only) and returns it with its secret key.
func (s *Service) CreateUser(ctx context.Context, caller Caller, name string, admin bool) (Caller, string, error) {
	if err := adminOnly(caller); err != nil {
		return Caller{}, "", err
	}
	u, secret, err := s.store.CreateUser(ctx, name, admin)
	switch {
	case errors.Is(err, storage.ErrExists):
		return Caller{}, "", atKey("name", eh.Busyf("key name: a user called %s exists already", name))
	case errors.Is(err, storage.ErrInvalid):
		return Caller{}, "", atKey("name", eh.Usagef("key name: %s", plain(err)))
	case err != nil:
		return Caller{}, "", apiError(err)
	}
	return callerOf(u), secret, nil
}

// RemoveUser removes a user who owns nothing (admins only, never oneself):
// their servers, drives and resources must be destroyed first (409 busy says
// how many are left), so removing a user never destroys data by surprise.
func (s *Service) RemoveUser(ctx context.Context, caller Caller, id string) error {
	if err := adminOnly(caller); err != nil {
		return err
	}
	if id == caller.ID {
		return eh.Busyf("you cannot remove yourself")
	}
	return apiError(s.store.DeleteUser(ctx, id))
}

// ParseLimits reads limit:NAME keys (`hearth user set`, POST /users/USER/set):
// servers, ips and vlans are counts, cpu is MHz, mem is MB (or a size with
// K, M, G, T), drives is bytes (or a size with K, M, G, T); an empty value
// or none removes the limit (storage.NoLimit). Any other key is 400 usage
// naming it.
func ParseLimits(in eh.Props) (storage.Amounts, error) {
	out := storage.Amounts{}
	for _, k := range in.Keys() {
		name, ok := strings.CutPrefix(k, "limit:")
		if !ok || !storage.IsLimit(name) {
			return nil, atKey(k, eh.Usagef("unknown user key %s (want limit:%s)", k, strings.Join(storage.LimitNames, ", limit:")))
		}
		v := strings.TrimSpace(in[k])
		if v == "" || strings.EqualFold(v, "none") {
			out[name] = storage.NoLimit
			continue
		}
		var n int64
		var err error
		switch name {
		case storage.LimitDrives:
			n, err = eh.ParseSize(v)
		case storage.LimitMem:
			if n, err = strconv.ParseInt(v, 10, 64); err != nil {
				if n, err = eh.ParseSize(v); err == nil {
					n >>= 20
				}
			}
		default:
			n, err = strconv.ParseInt(v, 10, 64)
		}
		if err != nil || n < 0 {
			return nil, atKey(k, eh.Usagef("key %s: %q is not a %s (or none)", k, v, limitUnit[name]))
		}
		out[name] = n
	}
	return out, nil
}

var limitUnit = map[string]string{
	storage.LimitServers: "number of servers", storage.LimitCPU: "number of MHz", storage.LimitMem: "number of MB or a size",
	storage.LimitDrives: "size", storage.LimitIPs: "number of static IPs", storage.LimitVLANs: "number of VLANs",
}

// userProps is a user's info: identity, limit:NAME for each limit set and
// usage:NAME for each limit name, in the units ParseLimits reads.
func userProps(u storage.User, limits, usage storage.Amounts) eh.Props {
	p := eh.Props{"user": u.ID, "name": u.Name, "admin": strconv.FormatBool(u.Admin)}
	for _, name := range storage.LimitNames {
		if v, ok := limits[name]; ok {
			p["limit:"+name] = strconv.FormatInt(v, 10)
		}
		p["usage:"+name] = strconv.FormatInt(usage[name], 10)
	}
	return p
}

// findUser resolves a user UUID or name the caller may see: anyone for an
// admin, themselves otherwise; anything else is missing.
func (s *Service) findUser(ctx context.Context, c Caller, login string) (storage.User, error) {
	if !c.Admin && login != c.ID && login != c.Name {
		return storage.User{}, missing("user", login)
	}
	u, err := s.store.FindUser(ctx, login)
	if errors.Is(err, storage.ErrNotFound) {
		return storage.User{}, missing("user", login)
	}
	return u, apiError(err)
}

func (s *Service) userInfo(ctx context.Context, u storage.User) (eh.Props, error) {
	limits, err := s.store.Limits(ctx, u.ID)
	if err != nil {
		return nil, apiError(err)
	}
	usage, err := s.store.Usage(ctx, u.ID)
	if err != nil {
		return nil, apiError(err)
	}
	return userProps(u, limits, usage), nil
}

// UserInfo returns a user's info with their limits and usage: any user's for
// an admin, one's own otherwise (GET /users/USER/info).
func (s *Service) UserInfo(ctx context.Context, c Caller, login string) (eh.Props, error) {
	u, err := s.findUser(ctx, c, login)
	if err != nil {
		return nil, err
	}
	return s.userInfo(ctx, u)
}

// UsersInfo returns the info of every user for an admin, of oneself otherwise.
func (s *Service) UsersInfo(ctx context.Context, c Caller) ([]eh.Props, error) {
	users := []storage.User{{ID: c.ID, Name: c.Name, Admin: c.Admin}}
	if c.Admin {
		var err error
		if users, err = s.store.Users(ctx); err != nil {
			return nil, apiError(err)
		}
	}
	out := make([]eh.Props, 0, len(users))
	for _, u := range users {
		p, err := s.userInfo(ctx, u)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// SetUser changes a user's limits (admins only; POST /users/USER/set): the
// limit:NAME keys of ParseLimits. Keys of the user's info echoed back
// unchanged are ignored; any other key is 400 usage.
func (s *Service) SetUser(ctx context.Context, c Caller, login string, changes eh.Props) (eh.Props, error) {
	if err := adminOnly(c); err != nil {
		return nil, err
	}
	u, err := s.findUser(ctx, c, login)
	if err != nil {
		return nil, err
	}
	cur, err := s.userInfo(ctx, u)
	if err != nil {
		return nil, err
	}
	in := eh.Props{}
	for k, v := range changes {
		if name, ok := strings.CutPrefix(k, "usage:"); ok && storage.IsLimit(name) ||
			!strings.HasPrefix(k, "limit:") && cur[k] == v && v != "" {
			continue // echoed info
		}
		in[k] = v
	}
	limits, err := ParseLimits(in)
	if err != nil {
		return nil, err
	}
	if _, err := s.store.SetLimits(ctx, u.ID, limits); err != nil {
		return nil, apiError(err)
	}
	s.log.Info("user limits changed", "user", u.Name, "by", c.Name)
	return s.userInfo(ctx, u)
}
