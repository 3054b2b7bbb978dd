package storage

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"hearth/internal/logtest"
)

func openTest(t testing.TB, dir string, opts ...Option) *Store {
	t.Helper()
	opts = append([]Option{WithLogger(logtest.Logger(t))}, opts...)
	s, err := Open(dir, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func mustUser(t testing.TB, s *Store, name string, admin bool) User {
	t.Helper()
	u, _, err := s.CreateUser(context.Background(), name, admin)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestOpenCreatesLayoutAndKeepsHostID(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	host := s.HostID()
	s.Close()
	for _, p := range []string{"hearth.db", "drives", "run"} {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			t.Errorf("missing %s: %v", p, err)
		}
	}
	s = openTest(t, dir)
	if s.HostID() != host || !validUUID(host) {
		t.Fatalf("host id %q then %q", host, s.HostID())
	}
	var mode string
	if err := s.db.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("journal_mode %q %v", mode, err)
	}
	var fk int
	if err := s.db.QueryRow(`PRAGMA foreign_keys`).Scan(&fk); err != nil || fk != 1 {
		t.Fatalf("foreign_keys %d %v", fk, err)
	}
	var version int
	if err := s.db.QueryRow(`PRAGMA user_version`).Scan(&version); err != nil || version != len(migrations) {
		t.Fatalf("user_version %d %v", version, err)
	}
}

func TestRefusesNewerSchema(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	if _, err := s.db.Exec(`PRAGMA user_version = 999`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("Open of a newer schema: %v", err)
	}
}

func TestUsers(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	u, secret, err := s.CreateUser(ctx, "alice", true)
	if err != nil {
		t.Fatal(err)
	}
	if len(secret) != 64 {
		t.Fatalf("secret %q: want 64 hex characters", secret)
	}
	var stored []byte
	s.db.QueryRow(`SELECT secret_sha256 FROM users WHERE id = ?`, u.ID).Scan(&stored)
	if bytes.Contains(stored, []byte(secret)) || len(stored) != 32 {
		t.Fatalf("stored secret %x", stored)
	}
	for _, login := range []string{u.ID, "alice", strings.ToUpper(u.ID)} {
		got, err := s.Authenticate(ctx, login, secret)
		if err != nil || got.ID != u.ID || !got.Admin {
			t.Errorf("Authenticate(%s) = %+v, %v", login, got, err)
		}
	}
	for _, c := range [][2]string{{"alice", secret[:63] + "x"}, {"bob", secret}, {"alice", ""}} {
		if _, err := s.Authenticate(ctx, c[0], c[1]); !errors.Is(err, ErrAuth) {
			t.Errorf("Authenticate(%q, %q) = %v, want ErrAuth", c[0], c[1], err)
		}
	}
	if _, _, err := s.CreateUser(ctx, "alice", false); !errors.Is(err, ErrExists) {
		t.Errorf("duplicate name: %v", err)
	}
	for _, bad := range []string{"", "a b", "a:b", u.ID, strings.Repeat("x", 65)} {
		if _, _, err := s.CreateUser(ctx, bad, false); !errors.Is(err, ErrInvalid) {
			t.Errorf("CreateUser(%q) = %v, want ErrInvalid", bad, err)
		}
	}
	mustUser(t, s, "bob", false)
	users, err := s.Users(ctx)
	if err != nil || len(users) != 2 {
		t.Fatalf("Users = %v, %v", users, err)
	}
	admin, err := s.FirstAdmin(ctx)
	if err != nil || admin.ID != u.ID {
		t.Fatalf("FirstAdmin = %v, %v", admin, err)
	}
}

func TestServers(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	u := mustUser(t, s, "alice", false)
	other := mustUser(t, s, "bob", false)
	srv, err := s.CreateServer(ctx, u.ID, map[string]string{"name": "web", "cpu": "1000"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateServer(ctx, "00000000-0000-0000-0000-00000000dead", nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("server of a missing owner: %v", err)
	}
	s.CreateServer(ctx, other.ID, map[string]string{"name": "theirs"})
	mine, _ := s.Servers(ctx, u.ID)
	all, _ := s.Servers(ctx, "")
	if len(mine) != 1 || len(all) != 2 {
		t.Fatalf("Servers: mine %d all %d", len(mine), len(all))
	}
	started := time.Unix(1700000000, 0)
	got, err := s.SetServerStatus(ctx, srv.ID, StatusActive, started, "")
	if err != nil || got.Status != StatusActive || !got.Started.Equal(started) {
		t.Fatalf("SetServerStatus = %+v, %v", got, err)
	}
	if _, err := s.SetServerStatus(ctx, srv.ID, "weird", time.Time{}, ""); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad status: %v", err)
	}
	active, _ := s.ServersByStatus(ctx, StatusActive, StatusPaused)
	if len(active) != 1 || active[0].ID != srv.ID {
		t.Fatalf("ServersByStatus = %v", active)
	}
	if err := s.DeleteServer(ctx, srv.ID); !errors.Is(err, ErrBusy) {
		t.Errorf("delete active: %v", err)
	}
	refuse := errors.New("no")
	if _, err := s.UpdateServer(ctx, srv.ID, func(srv *Server) error { srv.Config["name"] = "x"; return refuse }); err != refuse {
		t.Fatal(err)
	}
	if got, _ := s.Server(ctx, srv.ID); got.Config["name"] != "web" {
		t.Errorf("refused update applied: %v", got.Config)
	}
	s.SetServerStatus(ctx, srv.ID, StatusDead, time.Time{}, "boot drive has no filesystem")
	got, _ = s.Server(ctx, srv.ID)
	if got.Error != "boot drive has no filesystem" || !got.Started.IsZero() {
		t.Errorf("dead server %+v", got)
	}
	if err := s.DeleteServer(ctx, srv.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Server(ctx, srv.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleted server: %v", err)
	}
	events, _ := s.Events(ctx, srv.ID, 10)
	if len(events) < 3 || events[0].Kind != "server.destroy" {
		t.Errorf("events %+v", events)
	}
}

func fileSize(t testing.TB, path string) (size, allocated int64) {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return info.Size(), statBlocks(info) * 512
}

func TestDriveLifecycle(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	u := mustUser(t, s, "alice", false)
	d, err := s.CreateDrive(ctx, Drive{Owner: u.ID, Name: "disk", Size: 10 << 20, Props: map[string]string{"tags": "a b"}})
	if err != nil {
		t.Fatal(err)
	}
	size, alloc := fileSize(t, s.DrivePath(d.ID))
	if size != 10<<20 || alloc > 64<<10 {
		t.Fatalf("new image: size %d allocated %d, want sparse %d", size, alloc, 10<<20)
	}
	data := make([]byte, 3<<20)
	rand.Read(data)
	copy(data[1<<20:2<<20], make([]byte, 1<<20)) // a zero megabyte in the middle becomes a hole
	n, err := s.WriteDrive(ctx, d.ID, 4096, bytes.NewReader(data))
	if err != nil || n != int64(len(data)) {
		t.Fatalf("WriteDrive = %d, %v", n, err)
	}
	var out bytes.Buffer
	if n, err := s.ReadDrive(ctx, d.ID, 4096, int64(len(data)), &out); err != nil || n != int64(len(data)) || !bytes.Equal(out.Bytes(), data) {
		t.Fatalf("ReadDrive = %d, %v, equal %v", n, err, bytes.Equal(out.Bytes(), data))
	}
	if _, alloc := fileSize(t, s.DrivePath(d.ID)); alloc > 2<<20+64<<10 {
		t.Errorf("zero megabyte was allocated: %d bytes allocated", alloc)
	}
	// Writes past the end are refused; reads past it are cut.
	if _, err := s.WriteDrive(ctx, d.ID, 10<<20-10, bytes.NewReader(make([]byte, 11))); !errors.Is(err, ErrTooLarge) {
		t.Errorf("write past the end: %v", err)
	}
	if _, err := s.WriteDrive(ctx, d.ID, 10<<20+1, bytes.NewReader(nil)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("write after the end: %v", err)
	}
	out.Reset()
	if n, err := s.ReadDrive(ctx, d.ID, 10<<20-5, 100, &out); err != nil || n != 5 {
		t.Errorf("read at the end = %d, %v", n, err)
	}
	got, _ := s.Drive(ctx, d.ID)
	if got.Counters.WriteRequests != 2 || got.Counters.ReadBytes != int64(len(data))+5 {
		t.Errorf("counters %+v", got.Counters)
	}
	// Resize truncates the file.
	got, err = s.UpdateDrive(ctx, d.ID, func(d *Drive) error { d.Size = 1 << 20; d.Name = "small"; return nil })
	if err != nil || got.Size != 1<<20 {
		t.Fatal(err)
	}
	if size, _ := fileSize(t, s.DrivePath(d.ID)); size != 1<<20 {
		t.Errorf("resized file %d", size)
	}
	if err := s.DeleteDrive(ctx, d.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.DrivePath(d.ID)); !os.IsNotExist(err) {
		t.Errorf("image left after delete: %v", err)
	}
	if _, err := s.Drive(ctx, d.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleted drive: %v", err)
	}
}

func TestReadable(t *testing.T) {
	d := Drive{Owner: "a", Props: map[string]string{"readers": "b c"}}
	if !d.Readable("a") || !d.Readable("b") || d.Readable("x") {
		t.Error("readers")
	}
	d.Props["readers"] = Everyone
	if !d.Readable("x") {
		t.Error("everyone")
	}
}

func TestClaims(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	u := mustUser(t, s, "alice", false)
	excl, _ := s.CreateDrive(ctx, Drive{Owner: u.ID, Name: "excl", Size: 1 << 20})
	shared, _ := s.CreateDrive(ctx, Drive{Owner: u.ID, Name: "shared", Size: 1 << 20, Props: map[string]string{"claim:type": "shared"}})
	a, _ := s.CreateServer(ctx, u.ID, map[string]string{"ide:0:0": excl.ID, "ide:0:1": shared.ID, "ide:0:1:media": "cdrom"})
	b, _ := s.CreateServer(ctx, u.ID, map[string]string{"block:0": shared.ID})
	c, _ := s.CreateServer(ctx, u.ID, map[string]string{"ide:0:0": excl.ID})
	if err := s.Claim(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.Claim(ctx, b.ID); err != nil {
		t.Fatalf("shared drive: %v", err)
	}
	if err := s.Claim(ctx, c.ID); !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), "ide:0:0") {
		t.Fatalf("second claim of an exclusive drive: %v", err)
	}
	d, _ := s.Drive(ctx, shared.ID)
	want := []string{s.HostID() + ":guest:" + a.ID + ":ide:0:1", s.HostID() + ":guest:" + b.ID + ":block:0"}
	if len(d.Claimed) != 2 || !strings.Contains(strings.Join(d.Claimed, " "), want[0]) || !strings.Contains(strings.Join(d.Claimed, " "), want[1]) {
		t.Fatalf("claimed %v, want %v", d.Claimed, want)
	}
	if err := s.DeleteDrive(ctx, excl.ID); !errors.Is(err, ErrBusy) {
		t.Errorf("delete claimed: %v", err)
	}
	if _, err := s.WriteDrive(ctx, excl.ID, 0, strings.NewReader("x")); !errors.Is(err, ErrBusy) {
		t.Errorf("write claimed: %v", err)
	}
	att, err := s.ServerDrives(ctx, a.ID)
	if err != nil || len(att) != 2 || att[0].Device != "ide:0:0" || att[1].ReadOnly != true || att[0].Path != s.DrivePath(excl.ID) {
		t.Fatalf("ServerDrives = %+v, %v", att, err)
	}
	s.ReleaseClaims(ctx, a.ID)
	if err := s.Claim(ctx, c.ID); err != nil {
		t.Fatalf("claim after release: %v", err)
	}
	// Claims vanish with their server.
	s.DeleteServer(ctx, b.ID)
	if d, _ := s.Drive(ctx, shared.ID); len(d.Claimed) != 0 {
		t.Errorf("claims of a deleted server: %v", d.Claimed)
	}
	gone, _ := s.CreateServer(ctx, u.ID, map[string]string{"ide:0:0": "00000000-0000-0000-0000-000000000000"})
	if _, err := s.ServerDrives(ctx, gone.ID); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "ide:0:0") {
		t.Errorf("missing drive: %v", err)
	}
}

// TestClaimsWriteOnce: a drive is attached writable to at most one running
// server, read-only attachments (a cdrom, a drive the owner may only read)
// go together and beside the writer, and ServerDrives marks which are
// read-only.
func TestClaimsWriteOnce(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	admin := mustUser(t, s, "root", true)
	bob := mustUser(t, s, "bob", false)
	lib, _ := s.CreateDrive(ctx, Drive{Owner: admin.ID, Name: "lib", Size: 1 << 20, Library: true,
		Props: map[string]string{"claim:type": "shared", "readers": Everyone}})
	own, _ := s.CreateDrive(ctx, Drive{Owner: bob.ID, Name: "own", Size: 1 << 20, Props: map[string]string{"claim:type": "shared"}})

	live1, _ := s.CreateServer(ctx, bob.ID, map[string]string{"ide:0:0": lib.ID})
	live2, _ := s.CreateServer(ctx, bob.ID, map[string]string{"ide:0:0": lib.ID, "ide:0:0:media": "cdrom"})
	for _, srv := range []Server{live1, live2} {
		att, err := s.ServerDrives(ctx, srv.ID)
		if err != nil || len(att) != 1 || !att[0].ReadOnly {
			t.Fatalf("another user's library drive attached %+v, %v: want read-only", att, err)
		}
		if err := s.Claim(ctx, srv.ID); err != nil {
			t.Fatalf("read-only attachments side by side: %v", err)
		}
	}
	writer, _ := s.CreateServer(ctx, admin.ID, map[string]string{"ide:0:0": lib.ID})
	if att, _ := s.ServerDrives(ctx, writer.ID); len(att) != 1 || att[0].ReadOnly {
		t.Fatalf("the owner's own drive attached %+v: want writable", att)
	}
	if err := s.Claim(ctx, writer.ID); err != nil {
		t.Fatalf("one writer beside read-only attachments: %v", err)
	}
	second, _ := s.CreateServer(ctx, admin.ID, map[string]string{"block:1": lib.ID})
	if err := s.Claim(ctx, second.ID); !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), lib.Name+" (block:1)") || !strings.Contains(err.Error(), "running server "+writer.ID) {
		t.Fatalf("second writer: %v, want busy naming the drive and the writer", err)
	}

	a, _ := s.CreateServer(ctx, bob.ID, map[string]string{"ide:0:0": own.ID})
	b, _ := s.CreateServer(ctx, bob.ID, map[string]string{"ide:0:1": own.ID})
	if err := s.Claim(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.Claim(ctx, b.ID); !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), "ide:0:1") {
		t.Fatalf("a shared drive written by two servers: %v", err)
	}
	s.ReleaseClaims(ctx, a.ID)
	if err := s.Claim(ctx, b.ID); err != nil {
		t.Fatalf("writer after the first one stopped: %v", err)
	}
}

func gzipBytes(t testing.TB, data []byte) []byte {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write(data)
	zw.Close()
	return b.Bytes()
}

func TestImaging(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := openTest(t, t.TempDir())
	u := mustUser(t, s, "alice", false)
	content := make([]byte, 3<<20)
	rand.Read(content[:1<<20])
	copy(content[2<<20:], content[:1<<20])
	newDrive := func(name string, size int64, data []byte) Drive {
		d, err := s.CreateDrive(ctx, Drive{Owner: u.ID, Name: name, Size: size})
		if err != nil {
			t.Fatal(err)
		}
		if data != nil {
			if _, err := s.WriteDrive(ctx, d.ID, 0, bytes.NewReader(data)); err != nil {
				t.Fatal(err)
			}
		}
		return d
	}
	read := func(id string) []byte {
		var b bytes.Buffer
		if _, err := s.ReadDrive(ctx, id, 0, 1<<40, &b); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	lastEvent := func(id string) string {
		ev, _ := s.Events(ctx, id, 1)
		return ev[0].Message
	}
	raw := newDrive("raw", int64(len(content)), content)
	zipped := gzipBytes(t, content)
	gz := newDrive("gz", int64(len(zipped)), zipped)

	cases := []struct {
		name, source, conv string
		size               int64
		want               []byte
	}{
		{"raw", raw.ID, ConvertNone, 4 << 20, append(append([]byte{}, content...), make([]byte, 1<<20)...)},
		{"gunzip", gz.ID, ConvertGunzip, 3 << 20, content},
		{"gunzip of raw data copies", raw.ID, ConvertGunzip, 3 << 20, content},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			target := newDrive(c.name, c.size, bytes.Repeat([]byte{7}, int(c.size))) // old contents must go
			d, err := s.StartImaging(ctx, target.ID, c.source, c.conv)
			if err != nil || d.Imaging != "queued" {
				t.Fatalf("StartImaging = %+v, %v", d, err)
			}
			if _, err := s.WriteDrive(ctx, target.ID, 0, strings.NewReader("x")); !errors.Is(err, ErrBusy) && d.Imaging != "" {
				// The job may already be over on a fast machine; only a refusal while imaging counts.
				if cur, _ := s.Drive(ctx, target.ID); cur.Imaging != "" {
					t.Errorf("write during imaging: %v", err)
				}
			}
			d, err = s.WaitImaging(ctx, target.ID)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(read(target.ID), c.want) {
				t.Fatalf("imaged contents differ (%s)", lastEvent(target.ID))
			}
			if d.Size != c.size || len(d.Claimed) != 0 {
				t.Errorf("after imaging %+v", d)
			}
		})
	}
	t.Run("gzip", func(t *testing.T) {
		target := newDrive("gzip", 3<<20, nil)
		if _, err := s.StartImaging(ctx, target.ID, raw.ID, ConvertGzip); err != nil {
			t.Fatal(err)
		}
		s.WaitImaging(ctx, target.ID)
		zr, err := gzip.NewReader(bytes.NewReader(read(target.ID)))
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(zr) // the trailing zeros after the gzip stream end it
		if !bytes.Equal(got, content) {
			t.Fatalf("gzip round trip differs (%s)", lastEvent(target.ID))
		}
	})
	t.Run("too small fails cleanly", func(t *testing.T) {
		target := newDrive("small", 1<<20, nil)
		if _, err := s.StartImaging(ctx, target.ID, raw.ID, ConvertNone); !errors.Is(err, ErrInvalid) {
			t.Fatalf("raw into a smaller drive: %v", err)
		}
		if _, err := s.StartImaging(ctx, target.ID, gz.ID, ConvertGunzip); err != nil {
			t.Fatal(err)
		}
		d, _ := s.WaitImaging(ctx, target.ID)
		if d.Imaging != "" || !strings.Contains(lastEvent(target.ID), "larger than the drive") {
			t.Fatalf("overflowing gunzip: %+v %q", d, lastEvent(target.ID))
		}
	})
	t.Run("refusals", func(t *testing.T) {
		target := newDrive("t", 4<<20, nil)
		for _, c := range []struct {
			target, source, conv string
			want                 error
		}{
			{target.ID, raw.ID, "bzip2", ErrInvalid},
			{target.ID, target.ID, "", ErrInvalid},
			{target.ID, "00000000-0000-0000-0000-000000000000", "", ErrNotFound},
			{"00000000-0000-0000-0000-000000000000", raw.ID, "", ErrNotFound},
		} {
			if _, err := s.StartImaging(ctx, c.target, c.source, c.conv); !errors.Is(err, c.want) {
				t.Errorf("StartImaging(%s, %s, %q) = %v, want %v", c.target, c.source, c.conv, err, c.want)
			}
		}
	})
}

func TestImagingQueueAndBusy(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := openTest(t, t.TempDir(), WithImagingWorkers(1))
	u := mustUser(t, s, "alice", false)
	src, _ := s.CreateDrive(ctx, Drive{Owner: u.ID, Name: "src", Size: 64 << 20})
	big := bytes.Repeat([]byte{1}, 64<<20)
	s.WriteDrive(ctx, src.ID, 0, bytes.NewReader(big))
	var targets []Drive
	for range 3 {
		d, _ := s.CreateDrive(ctx, Drive{Owner: u.ID, Name: "t", Size: 64 << 20})
		targets = append(targets, d)
		if _, err := s.StartImaging(ctx, d.ID, src.ID, ""); err != nil {
			t.Fatal(err)
		}
	}
	// With one worker the last job waits its turn.
	if d, _ := s.Drive(ctx, targets[2].ID); d.Imaging != "queued" {
		t.Errorf("third job shows %q, want queued", d.Imaging)
	}
	if _, err := s.StartImaging(ctx, targets[2].ID, src.ID, ""); !errors.Is(err, ErrBusy) {
		t.Errorf("second job on a busy target: %v", err)
	}
	if _, err := s.UpdateDrive(ctx, targets[2].ID, func(d *Drive) error { d.Name = "x"; return nil }); !errors.Is(err, ErrBusy) {
		t.Errorf("set during imaging: %v", err)
	}
	if err := s.DeleteDrive(ctx, targets[2].ID); !errors.Is(err, ErrBusy) {
		t.Errorf("delete during imaging: %v", err)
	}
	srv, _ := s.CreateServer(ctx, u.ID, map[string]string{"ide:0:0": targets[2].ID})
	if err := s.Claim(ctx, srv.ID); !errors.Is(err, ErrBusy) {
		t.Errorf("claim during imaging: %v", err)
	}
	for _, d := range targets {
		if d, err := s.WaitImaging(ctx, d.ID); err != nil || d.Imaging != "" {
			t.Fatal(d, err)
		}
	}
}

func TestNetwork(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir(), WithSubnet(netip.MustParsePrefix("192.168.50.0/29")))
	u := mustUser(t, s, "alice", false)
	if s.Gateway().String() != "192.168.50.1" || s.Netmask() != "255.255.255.248" {
		t.Fatalf("gateway %s netmask %s", s.Gateway(), s.Netmask())
	}
	ip, err := s.CreateIP(ctx, u.ID, map[string]string{"name": "fixed"})
	if err != nil || ip.ID != "192.168.50.2" || ip.Props["gateway"] != "192.168.50.1" || ip.Props["name"] != "fixed" {
		t.Fatalf("CreateIP = %+v, %v", ip, err)
	}
	used := map[string]bool{ip.ID: true, "192.168.50.1": true}
	var servers []Server
	for i := range 4 {
		srv, _ := s.CreateServer(ctx, u.ID, nil)
		servers = append(servers, srv)
		a, err := s.AllocateLease(ctx, srv.ID)
		if err != nil {
			t.Fatalf("lease %d: %v", i, err)
		}
		if used[a.String()] || !s.Subnet().Contains(a) {
			t.Fatalf("lease %s collides or is outside the pool", a)
		}
		used[a.String()] = true
		again, _ := s.AllocateLease(ctx, srv.ID)
		if again != a {
			t.Errorf("second allocation %s != %s", again, a)
		}
	}
	// .0 network, .1 gateway, .2 static, .3-.6 leased, .7 broadcast: full.
	extra, _ := s.CreateServer(ctx, u.ID, nil)
	if _, err := s.AllocateLease(ctx, extra.ID); !errors.Is(err, ErrFull) {
		t.Fatalf("exhausted pool: %v", err)
	}
	if _, err := s.CreateIP(ctx, u.ID, nil); !errors.Is(err, ErrFull) {
		t.Fatalf("exhausted pool for IPs: %v", err)
	}
	leased, _ := s.Lease(ctx, servers[0].ID)
	s.ReleaseLease(ctx, servers[0].ID)
	if _, err := s.Lease(ctx, servers[0].ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("released lease: %v", err)
	}
	if a, err := s.AllocateLease(ctx, extra.ID); err != nil || a != leased {
		t.Errorf("reuse of a released address = %s, %v", a, err)
	}
	// Deleting a server frees its lease.
	s.DeleteServer(ctx, servers[1].ID)
	if _, err := s.CreateIP(ctx, u.ID, nil); err != nil {
		t.Errorf("address of a deleted server not freed: %v", err)
	}

	vlan, err := s.CreateVLAN(ctx, u.ID, map[string]string{"name": "backnet"})
	if err != nil || !validUUID(vlan.ID) {
		t.Fatal(vlan, err)
	}
	srv, _ := s.CreateServer(ctx, u.ID, map[string]string{"nic:1:vlan": vlan.ID, "nic:0:dhcp": ip.ID})
	for _, r := range []Resource{vlan, ip} {
		if err := s.DeleteResource(ctx, r.Type, r.ID); !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), srv.ID) {
			t.Errorf("delete %s in use: %v", r.Type, err)
		}
	}
	users, _ := s.ResourceUsers(ctx, ResourceVLAN, vlan.ID)
	if len(users) != 1 || users[0] != srv.ID {
		t.Errorf("ResourceUsers = %v", users)
	}
	r, err := s.UpdateResource(ctx, ResourceVLAN, vlan.ID, func(r *Resource) error { r.Props["name"] = "renamed"; return nil })
	if err != nil || r.Props["name"] != "renamed" {
		t.Fatal(r, err)
	}
	all, _ := s.Resources(ctx, u.ID, "")
	vlans, _ := s.Resources(ctx, "", ResourceVLAN)
	if len(all) != 3 || len(vlans) != 1 {
		t.Errorf("Resources: %d all, %d vlans", len(all), len(vlans))
	}
	s.UpdateServer(ctx, srv.ID, func(srv *Server) error { srv.Config = nil; return nil })
	if err := s.DeleteResource(ctx, ResourceVLAN, vlan.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Resource(ctx, ResourceVLAN, vlan.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleted vlan: %v", err)
	}
	if _, err := Open(t.TempDir(), WithSubnet(netip.MustParsePrefix("fd00::/64"))); !errors.Is(err, ErrInvalid) {
		t.Errorf("IPv6 subnet: %v", err)
	}
}

func TestLeasesNeverCollideConcurrently(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTest(t, dir)
	u := mustUser(t, s, "alice", false)
	// Two stores on one database, as `serve` and a second process would be.
	s2 := openTest(t, dir, WithoutMaintenance())
	var mu sync.Mutex
	seen := map[netip.Addr]bool{}
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := s
			if i%2 == 1 {
				st = s2
			}
			srv, err := st.CreateServer(ctx, u.ID, nil)
			if err != nil {
				t.Error(err)
				return
			}
			var a netip.Addr
			if i%3 == 0 {
				r, err := st.CreateIP(ctx, u.ID, nil)
				if err != nil {
					t.Error(err)
					return
				}
				a = netip.MustParseAddr(r.ID)
			} else if a, err = st.AllocateLease(ctx, srv.ID); err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if seen[a] {
				t.Errorf("address %s handed out twice", a)
			}
			seen[a] = true
		}()
	}
	wg.Wait()
}

func TestSweepRepairs(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	u := mustUser(t, s, "alice", false)
	d, _ := s.CreateDrive(ctx, Drive{Owner: u.ID, Name: "d", Size: 1 << 20})
	lost, _ := s.CreateDrive(ctx, Drive{Owner: u.ID, Name: "lost", Size: 2 << 20})
	s.Close()
	orphan := filepath.Join(dir, "drives", "0b7f7a4e-5b88-4e5e-8a44-5d8e9a0c1f00.img")
	os.WriteFile(orphan, []byte("x"), 0o600)
	os.Truncate(filepath.Join(dir, "drives", d.ID+".img"), 5<<20)
	os.Remove(filepath.Join(dir, "drives", lost.ID+".img"))
	s = openTest(t, dir)
	if _, err := os.Stat(orphan); !os.IsNotExist(err) {
		t.Errorf("orphan kept: %v", err)
	}
	if size, _ := fileSize(t, s.DrivePath(d.ID)); size != 1<<20 {
		t.Errorf("wrong-size file left at %d", size)
	}
	if size, _ := fileSize(t, s.DrivePath(lost.ID)); size != 2<<20 {
		t.Errorf("missing file remade at %d", size)
	}
}

func TestDeleteUser(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	u := mustUser(t, s, "alice", false)
	srv, _ := s.CreateServer(ctx, u.ID, nil)
	if err := s.DeleteUser(ctx, u.ID); !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), "1 servers") {
		t.Fatalf("delete owner: %v", err)
	}
	s.DeleteServer(ctx, srv.ID)
	if err := s.DeleteUser(ctx, u.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.User(ctx, u.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleted user: %v", err)
	}
	if err := s.DeleteUser(ctx, u.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("delete twice: %v", err)
	}
}

func TestCreateDriveFrom(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	u := mustUser(t, s, "admin", true)
	d, err := s.CreateDriveFrom(ctx, Drive{Owner: u.ID, Name: "lib", Library: true, Props: map[string]string{"readers": Everyone}},
		func(path string) error { return os.WriteFile(path, []byte("ext4 image"), 0o644) })
	if err != nil || d.Size != 10 {
		t.Fatalf("CreateDriveFrom = %+v, %v", d, err)
	}
	lib, _ := s.LibraryDrives(ctx)
	if len(lib) != 1 || lib[0].ID != d.ID || !lib[0].Readable("anyone") {
		t.Fatalf("LibraryDrives = %+v", lib)
	}
	failed := errors.New("mkfs failed")
	var written string
	if _, err := s.CreateDriveFrom(ctx, Drive{Owner: u.ID}, func(path string) error {
		written = path
		os.WriteFile(path, []byte("half"), 0o600)
		return failed
	}); err != failed {
		t.Fatalf("failed fill: %v", err)
	}
	if _, err := os.Stat(written); !os.IsNotExist(err) {
		t.Errorf("file of a failed fill left: %v", err)
	}
	if all, _ := s.Drives(ctx, ""); len(all) != 1 {
		t.Errorf("%d drives after a failed fill", len(all))
	}
}

func validUUID(s string) bool {
	_, err := uuid.Parse(s)
	return len(s) == 36 && err == nil && strings.ToLower(s) == s
}

// TestMACRace: servers created at once with one MAC: exactly one gets it,
// the others are ErrBusy naming the key (the check runs in the write
// transaction).
func TestMACRace(t *testing.T) {
	s := openTest(t, t.TempDir())
	u := mustUser(t, s, "alice", false)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.CreateServer(context.Background(), u.ID, map[string]string{"name": "s", "nic:0:model": "virtio", "nic:0:mac": "02:00:00:00:00:aa"})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	created := 0
	for err := range errs {
		var ke *KeyError
		switch {
		case err == nil:
			created++
		case !errors.Is(err, ErrBusy) || !errors.As(err, &ke) || ke.Key != "nic:0:mac":
			t.Errorf("a racing create: %v, want ErrBusy naming nic:0:mac", err)
		}
	}
	if created != 1 {
		t.Fatalf("%d servers got the MAC, want 1", created)
	}
}
