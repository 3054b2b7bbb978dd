package api

import (
	"context"
	"errors"
	"maps"
	"net/netip"
	"strings"

	"hearth/storage"
	"hearth/web/eh"
)

func checkResourceType(typ string) error {
	if typ != storage.ResourceIP && typ != storage.ResourceVLAN {
		return eh.Missingf("no such resource type %s (ip or vlan)", typ)
	}
	return nil
}

// resource loads a resource the caller owns (or any, for an admin).
func (s *Service) resource(ctx context.Context, c Caller, typ, id string) (storage.Resource, error) {
	if err := checkResourceType(typ); err != nil {
		return storage.Resource{}, err
	}
	if typ == storage.ResourceIP {
		a, err := netip.ParseAddr(id)
		if err != nil || !a.Is4() {
			return storage.Resource{}, missing("ip", id)
		}
		id = a.String()
	} else if err := checkID("vlan", id); err != nil {
		return storage.Resource{}, err
	}
	r, err := s.store.Resource(ctx, typ, strings.ToLower(id))
	if errors.Is(err, storage.ErrNotFound) || err == nil && !ownerCheck(c, r.Owner) {
		return storage.Resource{}, missing(typ, id)
	}
	if err != nil {
		return storage.Resource{}, apiError(err)
	}
	return r, nil
}

func resourceProps(r storage.Resource) eh.Props {
	p := make(eh.Props, len(r.Props)+3)
	maps.Copy(p, r.Props)
	p["resource"], p["type"], p["user"] = r.ID, r.Type, r.Owner
	return p
}

// ResourcesInfo returns the caller's resources (all, for an admin) of one
// type, or of both when typ is empty.
func (s *Service) ResourcesInfo(ctx context.Context, c Caller, typ string) ([]eh.Props, error) {
	if typ != "" {
		if err := checkResourceType(typ); err != nil {
			return nil, err
		}
	}
	owner := c.ID
	if c.Admin {
		owner = ""
	}
	list, err := s.store.Resources(ctx, owner, typ)
	if err != nil {
		return nil, apiError(err)
	}
	out := make([]eh.Props, len(list))
	for i, r := range list {
		out[i] = resourceProps(r)
	}
	return out, nil
}

// ResourceInfo returns one resource.
func (s *Service) ResourceInfo(ctx context.Context, c Caller, typ, id string) (eh.Props, error) {
	r, err := s.resource(ctx, c, typ, id)
	if err != nil {
		return nil, err
	}
	return resourceProps(r), nil
}

// CreateResource allocates a static IP from the pool (netmask, gateway and
// nameserver set from it) or makes a VLAN, owned by the caller.
func (s *Service) CreateResource(ctx context.Context, c Caller, typ string, props eh.Props) (eh.Props, error) {
	if err := checkResourceType(typ); err != nil {
		return nil, err
	}
	next, err := eh.NewResource(props)
	if err != nil {
		return nil, err
	}
	var r storage.Resource
	if typ == storage.ResourceIP {
		r, err = s.store.CreateIP(ctx, c.ID, next)
	} else {
		r, err = s.store.CreateVLAN(ctx, c.ID, next)
	}
	if err != nil {
		return nil, apiError(err)
	}
	return resourceProps(r), nil
}

// SetResource changes a resource's name, tags or user:* keys.
func (s *Service) SetResource(ctx context.Context, c Caller, typ, id string, changes eh.Props) (eh.Props, error) {
	r, err := s.resource(ctx, c, typ, id)
	if err != nil {
		return nil, err
	}
	if _, _, err := eh.UpdateResource(resourceProps(r), changes); err != nil {
		return nil, err
	}
	r, err = s.store.UpdateResource(ctx, typ, r.ID, func(cur *storage.Resource) error {
		_, changed, err := eh.UpdateResource(resourceProps(*cur), changes)
		if err != nil {
			return err
		}
		cur.Props = mergeProps(cur.Props, changed)
		return nil
	})
	if err != nil {
		return nil, apiError(err)
	}
	return resourceProps(r), nil
}

// DestroyResource removes a resource no server refers to (else 409 busy
// naming the server).
func (s *Service) DestroyResource(ctx context.Context, c Caller, typ, id string) error {
	r, err := s.resource(ctx, c, typ, id)
	if err != nil {
		return err
	}
	return apiError(s.store.DeleteResource(ctx, typ, r.ID))
}
