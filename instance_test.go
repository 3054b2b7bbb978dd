package main

import (
	"context"
	"errors"
	"log/slog"
	"testing"

	"hearth/internal/instance"
	"hearth/storage"
	"hearth/vmm/containerd"
)

// TestResolveInstance: the instance name is the flag's, else the one DATA
// was served as, else derived from DATA ("hearth" for a database from
// before instances), and is recorded; a rename with running servers is
// refused.
func TestResolveInstance(t *testing.T) {
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	open := func(dir string) *storage.Store {
		s, err := storage.Open(dir, storage.WithoutMaintenance())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}

	fresh := open(t.TempDir())
	derived, _ := instance.FromData(fresh.Dir())
	if got, err := resolveInstance(ctx, fresh, "", log); err != nil || got != derived {
		t.Fatalf("fresh DATA: %q, %v; want the name derived from DATA, %q", got, err, derived)
	}
	if got, err := resolveInstance(ctx, fresh, "", log); err != nil || got != derived {
		t.Errorf("second serve: %q, %v; want %q again", got, err, derived)
	}
	if got, err := resolveInstance(ctx, fresh, "tenant-a", log); err != nil || got != "tenant-a" {
		t.Errorf("rename without servers: %q, %v", got, err)
	}
	if got, _ := resolveInstance(ctx, fresh, "", log); got != "tenant-a" {
		t.Errorf("after the rename, serve without --instance runs as %q, want tenant-a", got)
	}

	// A database from before instances: servers, no instance recorded.
	legacy := open(t.TempDir())
	u, _, err := legacy.CreateUser(ctx, "alice", false)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := legacy.CreateServer(ctx, u.ID, map[string]string{"name": "s"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := legacy.SetServerStatus(ctx, srv.ID, storage.StatusActive, srv.Created, ""); err != nil {
		t.Fatal(err)
	}
	if got, err := resolveInstance(ctx, legacy, "", log); err != nil || got != instance.Legacy {
		t.Errorf("database from before instances: %q, %v; want %q, the names its guests run under", got, err, instance.Legacy)
	}
	var ue usageError
	if _, err := resolveInstance(ctx, legacy, "other", log); !errors.As(err, &ue) {
		t.Errorf("rename with a running server: %v, want a usage error", err)
	}
	if got, _ := resolveInstance(ctx, legacy, "", log); got != instance.Legacy {
		t.Errorf("a refused rename was recorded: %q", got)
	}

	base, claim, err := instanceIDBase(ctx, legacy, instance.Legacy)
	if err == nil {
		claim.Close()
	}
	if err != nil && !errors.Is(err, containerd.ErrIDWindowInUse) || err == nil && base != containerd.DefaultIDBase {
		t.Errorf("id base of the instance hearth: %d, %v; want %d (or in use by a Hearth serving it on this host)", base, err, containerd.DefaultIDBase)
	}
	base, claim, err = instanceIDBase(ctx, fresh, "tenant-a")
	if err != nil || base == containerd.DefaultIDBase {
		t.Fatalf("id base of tenant-a: %d, %v; want a window of its own", base, err)
	}
	if _, _, err := instanceIDBase(ctx, fresh, "tenant-a"); !errors.Is(err, containerd.ErrIDWindowInUse) {
		t.Errorf("a second claim of tenant-a's window while it is held: %v, want ErrIDWindowInUse", err)
	}
	claim.Close()
	again, claim, err := instanceIDBase(ctx, fresh, "renamed")
	if err != nil || again != base {
		t.Errorf("the recorded id base moved from %d to %d (%v)", base, again, err)
	} else {
		claim.Close()
	}
}
