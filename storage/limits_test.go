package storage

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

func wantLimit(t *testing.T, err error, name string) {
	t.Helper()
	var le *LimitError
	if !errors.Is(err, ErrLimit) || !errors.As(err, &le) || le.Name != name || !strings.HasPrefix(err.Error(), "limit:"+name+": ") {
		t.Fatalf("err = %v, want limit:%s", err, name)
	}
}

func TestLimitsEnforcedOnEveryPath(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	u := mustUser(t, s, "alice", false)
	other := mustUser(t, s, "bob", false)
	if _, err := s.SetLimits(ctx, u.ID, Amounts{LimitServers: 1, LimitCPU: 2000, LimitMem: 1024, LimitDrives: 3 << 30, LimitIPs: 1, LimitVLANs: 1}); err != nil {
		t.Fatal(err)
	}
	srv, err := s.CreateServer(ctx, u.ID, map[string]string{"cpu": "1000", "mem": "512"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.CreateServer(ctx, u.ID, map[string]string{"cpu": "500", "mem": "256"})
	wantLimit(t, err, LimitServers)
	if _, err := s.CreateServer(ctx, other.ID, map[string]string{"cpu": "9000", "mem": "9000"}); err != nil {
		t.Fatalf("bob has no limits: %v", err)
	}
	_, err = s.UpdateServer(ctx, srv.ID, func(x *Server) error { x.Config["mem"] = "2048"; return nil })
	wantLimit(t, err, LimitMem)
	if err.Error() != "limit:mem: 2048 MB of 1024 MB (512 MB in use, this asks for 1536 MB more)" {
		t.Errorf("message %q", err)
	}
	_, err = s.UpdateServer(ctx, srv.ID, func(x *Server) error { x.Config["cpu"] = "2500"; return nil })
	wantLimit(t, err, LimitCPU)
	if _, err := s.UpdateServer(ctx, srv.ID, func(x *Server) error { x.Config["cpu"] = "2000"; return nil }); err != nil {
		t.Fatalf("up to the limit: %v", err)
	}

	d, err := s.CreateDrive(ctx, Drive{Owner: u.ID, Size: 2 << 30})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.CreateDrive(ctx, Drive{Owner: u.ID, Size: 2 << 30})
	wantLimit(t, err, LimitDrives)
	_, err = s.UpdateDrive(ctx, d.ID, func(x *Drive) error { x.Size = 4 << 30; return nil })
	wantLimit(t, err, LimitDrives)
	if size, _ := fileSize(t, s.DrivePath(d.ID)); size != 2<<30 {
		t.Errorf("refused resize changed the image to %d bytes", size)
	}
	_, err = s.CloneDrive(ctx, d.ID, Drive{Owner: u.ID})
	wantLimit(t, err, LimitDrives)

	if _, err := s.CreateIP(ctx, u.ID, nil); err != nil {
		t.Fatal(err)
	}
	_, err = s.CreateIP(ctx, u.ID, nil)
	wantLimit(t, err, LimitIPs)
	if _, err := s.CreateVLAN(ctx, u.ID, nil); err != nil {
		t.Fatal(err)
	}
	_, err = s.CreateVLAN(ctx, u.ID, nil)
	wantLimit(t, err, LimitVLANs)

	// Lowering a limit below the usage refuses growth, never shrinking.
	if _, err := s.SetLimits(ctx, u.ID, Amounts{LimitDrives: 1 << 30, LimitServers: NoLimit}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateDrive(ctx, d.ID, func(x *Drive) error { x.Size = 1536 << 20; return nil }); err != nil {
		t.Fatalf("shrinking over the limit: %v", err)
	}
	if _, err := s.CreateServer(ctx, u.ID, map[string]string{"cpu": "0", "mem": "0"}); err != nil {
		t.Fatalf("servers limit removed: %v", err)
	}
	use, err := s.Usage(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := Amounts{LimitServers: 2, LimitCPU: 2000, LimitMem: 512, LimitDrives: 1536 << 20, LimitIPs: 1, LimitVLANs: 1}
	for k, v := range want {
		if use[k] != v {
			t.Errorf("usage %s = %d, want %d", k, use[k], v)
		}
	}
	lim, _ := s.Limits(ctx, u.ID)
	if _, ok := lim[LimitServers]; ok || lim[LimitDrives] != 1<<30 {
		t.Errorf("limits %v", lim)
	}
}

// Two creates racing for the last place must not both get it.
func TestLimitsHoldUnderConcurrency(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTest(t, dir)
	// A second store on the same data is another process (`hearth` CLI).
	s2 := openTest(t, dir, WithoutMaintenance())
	u := mustUser(t, s, "alice", false)
	if _, err := s.SetLimits(ctx, u.ID, Amounts{LimitServers: 3, LimitDrives: 3 << 20}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	made, madeDrives := 0, 0
	for i := range 16 {
		st := []*Store{s, s2}[i%2]
		wg.Add(2)
		go func() {
			defer wg.Done()
			_, err := st.CreateServer(ctx, u.ID, map[string]string{"cpu": "100", "mem": "32"})
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				made++
			} else if !errors.Is(err, ErrLimit) {
				t.Error(err)
			}
		}()
		go func() {
			defer wg.Done()
			_, err := st.CreateDrive(ctx, Drive{Owner: u.ID, Size: 1 << 20})
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				madeDrives++
			} else if !errors.Is(err, ErrLimit) {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if made != 3 || madeDrives != 3 {
		t.Errorf("made %d servers and %d drives, want 3 and 3", made, madeDrives)
	}
}

func TestDiskOvercommit(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	disk := int64(st.Blocks) * int64(st.Bsize)
	s := openTest(t, dir, WithDiskOvercommit(0.5))
	u := mustUser(t, s, "alice", false)
	room := disk / 2
	d, err := s.CreateDrive(ctx, Drive{Owner: u.ID, Size: room / 2})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.CreateDrive(ctx, Drive{Owner: u.ID, Size: room/2 + 1<<20})
	if !errors.Is(err, ErrFull) || !strings.Contains(err.Error(), "host disk") {
		t.Fatalf("create past the overcommit: %v", err)
	}
	_, err = s.UpdateDrive(ctx, d.ID, func(x *Drive) error { x.Size = room + 1<<20; return nil })
	if !errors.Is(err, ErrFull) {
		t.Fatalf("resize past the overcommit: %v", err)
	}
	if _, err := s.UpdateDrive(ctx, d.ID, func(x *Drive) error { x.Size = room - room%4096; return nil }); err != nil {
		t.Fatalf("resize up to the overcommit: %v", err)
	}
	// Without a ratio, no bound (the CLI's store, tests).
	free := openTest(t, t.TempDir())
	v := mustUser(t, free, "bob", false)
	if _, err := free.CreateDrive(ctx, Drive{Owner: v.ID, Size: 4 * disk}); err != nil {
		t.Fatal(err)
	}
}
