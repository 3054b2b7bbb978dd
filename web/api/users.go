package api

import (
	"context"
	"errors"

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
		return Caller{}, "", atKey("name", eh.Usagef("key name: %v", err))
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
