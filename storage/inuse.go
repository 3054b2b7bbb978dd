package storage

import (
	"context"
	"fmt"
	"strings"
)

// Label names a drive in a message as its owner knows it: by its name, by
// its UUID when it has none.
func (d Drive) Label() string {
	if d.Name != "" {
		return d.Name
	}
	return "drive " + d.ID
}

// Label names a server in a message ("server web1") as its owner knows it:
// by its name, by its UUID when it has none.
func (s Server) Label() string {
	if name := s.Config["name"]; name != "" {
		return name
	}
	return s.ID
}

// imaging is the ErrBusy refusal of drive d while an image is copied into it.
func imaging(d Drive) error {
	return fmt.Errorf("%s is being imaged — try again when the copy has finished: %w", d.Label(), ErrBusy)
}

// inUse is the ErrBusy refusal of drive d, which running servers claim: a
// sentence naming the drive and those servers as viewer (the user asking)
// knows them, and what to do. Servers of other users are not named.
func inUse(ctx context.Context, q querier, d Drive, viewer string) error {
	return inUseAs(ctx, q, d, "", viewer)
}

// inUseAs is inUse for a drive attached as device dev ("" for none), named
// beside the drive.
func inUseAs(ctx context.Context, q querier, d Drive, dev, viewer string) error {
	rows, err := q.QueryContext(ctx, `SELECT servers.id, servers.owner, servers.config FROM claims
		JOIN servers ON servers.id = claims.server WHERE claims.drive = ? ORDER BY servers.created, servers.id`, d.ID)
	if err != nil {
		return fmt.Errorf("storage: claims of drive %s: %w", d.ID, err)
	}
	defer rows.Close()
	var own []string
	others := 0
	for rows.Next() {
		var id, owner, config string
		if err := rows.Scan(&id, &owner, &config); err != nil {
			return fmt.Errorf("storage: claims of drive %s: %w", d.ID, err)
		}
		if owner != viewer {
			others++
			continue
		}
		srv := Server{ID: id}
		srv.Config, _ = decodeProps(config) // a config that cannot be read names the server by UUID
		own = append(own, srv.Label())
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("storage: claims of drive %s: %w", d.ID, err)
	}
	drive := d.Label()
	if dev != "" {
		drive += " (" + dev + ")"
	}
	return fmt.Errorf("%s: %w", inUseText(drive, own, others), ErrBusy)
}

// inUseText words the refusal of inUse.
func inUseText(drive string, own []string, others int) string {
	servers := strings.Join(own, ", ")
	switch {
	case len(own) == 1 && others == 0:
		return fmt.Sprintf("%s is attached to running server %s — stop %s first", drive, servers, servers)
	case len(own) > 1 && others == 0:
		return fmt.Sprintf("%s is attached to running servers %s — stop them first", drive, servers)
	case len(own) > 0:
		return fmt.Sprintf("%s is attached to running server %s and to a running server of another user", drive, servers)
	case others > 0:
		return fmt.Sprintf("%s is attached to a running server of another user", drive)
	}
	return fmt.Sprintf("%s is attached to a running server", drive) // the claim went between the two reads
}

// Label names a resource in a message: "VLAN backend", "static IP
// 10.1.0.5" (its address), by UUID when a VLAN has no name.
func (r Resource) Label() string {
	if r.Type == ResourceIP {
		return "static IP " + r.ID
	}
	if name := r.Props["name"]; name != "" {
		return "VLAN " + name
	}
	return "VLAN " + r.ID
}
