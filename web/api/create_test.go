package api

import (
	"context"
	"errors"
	"testing"

	"hearth/web/eh"
)

// TestCreateServerWithDrive: the create workflow builds server and boot
// drive, and a failing step removes what the earlier steps made (but never
// a drive it was only asked to attach).
func TestCreateServerWithDrive(t *testing.T) {
	ctx := context.Background()
	s, _ := newService(t)
	root := Caller{Admin: true}
	admin, _, err := s.CreateUser(ctx, root, "root", true)
	if err != nil {
		t.Fatal(err)
	}
	alice, _, err := s.CreateUser(ctx, admin, "alice", false)
	if err != nil {
		t.Fatal(err)
	}
	bob, _, err := s.CreateUser(ctx, admin, "bob", false)
	if err != nil {
		t.Fatal(err)
	}
	config := func(name string) eh.Props { return eh.Props{"name": name, "cpu": "1000", "mem": "512"} }
	counts := func(c Caller) (servers, drives int) {
		t.Helper()
		srv, err := s.ServersInfo(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		drv, err := s.DrivesInfo(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		return len(srv), len(drv)
	}
	step := func(err error) string {
		var ce *CreateError
		if !errors.As(err, &ce) {
			t.Fatalf("error %v is not a *CreateError", err)
		}
		var e *eh.Error
		if !errors.As(err, &e) {
			t.Fatalf("error %v wraps no *eh.Error", err)
		}
		return ce.Step
	}
	source, err := s.CreateDrive(ctx, alice, eh.Props{"name": "image", "size": "1M"})
	if err != nil {
		t.Fatal(err)
	}
	bobs, err := s.CreateDrive(ctx, bob, eh.Props{"name": "bob's", "size": "1M"})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("blank drive, left stopped", func(t *testing.T) {
		made, err := s.CreateServerWithDrive(ctx, alice, ServerWithDrive{Config: config("a"), DriveName: "a boot", DriveSize: 4 << 20})
		if err != nil {
			t.Fatal(err)
		}
		info, err := s.ServerInfo(ctx, alice, made.Server)
		if err != nil {
			t.Fatal(err)
		}
		if info["ide:0:0"] != made.Drive || info["boot"] != "ide:0:0" || made.Imaging || made.Started {
			t.Fatalf("made %+v, server %v", made, info)
		}
		if d, err := s.DriveInfo(ctx, alice, made.Drive); err != nil || d["name"] != "a boot" || d["size"] != "4194304" {
			t.Fatalf("boot drive %v: %v", d, err)
		}
	})
	t.Run("imaged from a source", func(t *testing.T) {
		made, err := s.CreateServerWithDrive(ctx, alice, ServerWithDrive{Config: config("b"), Source: source["drive"], DriveName: "b boot", DriveSize: 4 << 20, Start: true})
		if err != nil {
			t.Fatal(err)
		}
		if !made.Imaging || made.Started {
			t.Fatalf("made %+v: want imaging, not started", made)
		}
	})
	servers, drives := counts(alice)
	t.Run("a failed start keeps what was made", func(t *testing.T) {
		// No guest runtime is wired: the start is refused.
		made, err := s.CreateServerWithDrive(ctx, alice, ServerWithDrive{Config: config("c"), DriveName: "c boot", DriveSize: 1 << 20, Start: true})
		if got := step(err); got != StepStart {
			t.Fatalf("step %q, want %q (%v)", got, StepStart, err)
		}
		if _, err := s.ServerInfo(ctx, alice, made.Server); err != nil {
			t.Fatalf("server of a failed start: %v", err)
		}
		servers, drives = servers+1, drives+1
	})
	for _, tc := range []struct {
		name, step string
		want       ServerWithDrive
	}{
		{"bad configuration", StepServer, ServerWithDrive{Config: eh.Props{"name": "d", "cpu": "lots", "mem": "512"}, DriveSize: 1 << 20}},
		{"bad drive size", StepDrive, ServerWithDrive{Config: config("e"), DriveName: "e boot", DriveSize: -1}},
		{"unreadable source", StepImage, ServerWithDrive{Config: config("f"), Source: bobs["drive"], DriveName: "f boot", DriveSize: 1 << 20}},
		{"someone else's drive to attach", StepAttach, ServerWithDrive{Config: config("g"), Attach: bobs["drive"]}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.CreateServerWithDrive(ctx, alice, tc.want)
			if got := step(err); got != tc.step {
				t.Fatalf("step %q, want %q (%v)", got, tc.step, err)
			}
			if gotServers, gotDrives := counts(alice); gotServers != servers || gotDrives != drives {
				t.Fatalf("after the failure alice has %d servers and %d drives, want %d and %d (nothing left behind)",
					gotServers, gotDrives, servers, drives)
			}
		})
	}
	if _, err := s.DriveInfo(ctx, bob, bobs["drive"]); err != nil {
		t.Fatalf("the drive asked to be attached was removed: %v", err)
	}
}
