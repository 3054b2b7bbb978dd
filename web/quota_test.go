package web

import (
	"bytes"
	"compress/gzip"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"hearth/storage"
)

// Limits an admin sets through the API are enforced on every path that
// makes something or makes it larger: 402 billing naming the limit.
func TestQuotasThroughTheAPI(t *testing.T) {
	e := newEnv(t)
	admin := e.user("root", true)
	alice := e.user("alice", false)
	bob := e.user("bob", false)

	// Only admins set limits; users read their own, nobody else's.
	alice.post("/users/"+alice.id+"/set", "limit:mem 1").expectError(t, 401, "auth", "admin")
	alice.get("/users/"+bob.id+"/info").expectError(t, 404, "missing", bob.id)
	admin.post("/users/alice/set", "limit:colour 1").expectError(t, 400, "usage", "limit:colour")
	admin.post("/users/alice/set", "limit:mem lots").expectError(t, 400, "usage", "limit:mem")
	admin.post("/users/nobody/set", "limit:mem 1").expectError(t, 404, "missing", "nobody")
	info := admin.post("/users/alice/set", "limit:servers 2\nlimit:cpu 3000\nlimit:mem 1G\nlimit:drives 64M\nlimit:ips 1\nlimit:vlans 1").expect(t, 200).props(t)
	if info["limit:mem"] != "1024" || info["limit:drives"] != "67108864" || info["usage:servers"] != "0" || info["user"] != alice.id {
		t.Fatalf("set answered %q", info)
	}

	srv := alice.post("/servers/create/stopped", "name a\ncpu 1000\nmem 512").expect(t, 200).props(t)["server"]
	alice.post("/servers/create/stopped", "name b\ncpu 1000\nmem 1024").expectError(t, 402, "billing", "limit:mem: 1536 MB of 1024 MB")
	alice.post("/servers/"+srv+"/set", "cpu 4000").expectError(t, 402, "billing", "limit:cpu: 4000 MHz of 3000 MHz")
	alice.post("/servers/"+srv+"/set", "mem 2048").expectError(t, 402, "billing", "limit:mem")
	alice.post("/servers/create/stopped", "name b\ncpu 1000\nmem 256").expect(t, 200)
	alice.post("/servers/create/stopped", "name c\ncpu 100\nmem 32").expectError(t, 402, "billing", "limit:servers: 3 servers of 2")
	bob.post("/servers/create/stopped", "name big\ncpu 9000\nmem 9000").expect(t, 200) // bob has no limits

	drive := alice.post("/drives/create", "name d\nsize 48M").expect(t, 200).props(t)["drive"]
	alice.post("/drives/create", "name e\nsize 32M").expectError(t, 402, "billing", "limit:drives: 80M of 64M")
	alice.post("/drives/"+drive+"/set", "size 65M").expectError(t, 402, "billing", "limit:drives")
	alice.post("/drives/"+drive+"/clone", "name copy").expectError(t, 402, "billing", "limit:drives")
	lib := admin.post("/drives/create", "name lib\nsize 32M\nreaders "+storage.Everyone).expect(t, 200).props(t)["drive"]
	alice.post("/drives/"+lib+"/clone", "name mine").expectError(t, 402, "billing", "limit:drives")
	alice.post("/drives/"+drive+"/set", "size 64M").expect(t, 200)

	alice.post("/resources/ip/create", "").expect(t, 200)
	alice.post("/resources/ip/create", "").expectError(t, 402, "billing", "limit:ips: 2 static IPs of 1")
	alice.post("/resources/vlan/create", "name v").expect(t, 200)
	alice.post("/resources/vlan/create", "name w").expectError(t, 402, "billing", "limit:vlans")

	// Usage shows in the user's own info; a limit removed is gone.
	me := alice.get("/users/"+alice.id+"/info").expect(t, 200).props(t)
	for k, v := range map[string]string{"usage:servers": "2", "usage:cpu": "2000", "usage:mem": "768", "usage:drives": "67108864", "usage:ips": "1", "usage:vlans": "1", "limit:servers": "2"} {
		if me[k] != v {
			t.Errorf("info %s = %q, want %q", k, me[k], v)
		}
	}
	admin.post("/users/"+alice.id+"/set", "limit:servers none\nlimit:drives").expect(t, 200)
	alice.post("/servers/create/stopped", "name c\ncpu 100\nmem 32").expect(t, 200)
	alice.post("/drives/"+drive+"/clone", "name copy").expect(t, 200)
	if got := admin.get("/users/list").expect(t, 200).body; !strings.Contains(got, alice.id+" alice\n") || !strings.Contains(got, bob.id+" bob\n") {
		t.Errorf("users list %q", got)
	}
	if got := alice.get("/users/info").expect(t, 200).blocks(t); len(got) != 1 || got[0]["user"] != alice.id {
		t.Errorf("a user's /users/info %v", got)
	}
}

// vnc:tls on and a drive cipher are promises Hearth does not keep: refused,
// never stored.
func TestUnkeptPromisesRefused(t *testing.T) {
	e := newEnv(t)
	c := e.user("alice", false)
	c.post("/servers/create/stopped", "name s\ncpu 1000\nmem 512\nvnc:tls on").expectError(t, 400, "usage", "vnc:tls")
	srv := c.post("/servers/create/stopped", "name s\ncpu 1000\nmem 512").expect(t, 200).props(t)["server"]
	c.post("/servers/"+srv+"/set", "vnc:tls on").expectError(t, 400, "usage", "vnc:tls")
	c.post("/drives/create", "size 1M\nencryption:cipher aes-xts-plain").expectError(t, 400, "usage", "encryption:cipher")
	d := c.post("/drives/create", "size 1M").expect(t, 200).props(t)
	if d["encryption:cipher"] != "none" {
		t.Errorf("a new drive says encryption:cipher %q", d["encryption:cipher"])
	}
	c.post("/drives/"+d["drive"]+"/set", "encryption:cipher aes-xts-plain").expectError(t, 400, "usage", "encryption:cipher")
	if got := c.get("/servers/"+srv+"/info").expect(t, 200).props(t); got["vnc:tls"] != "" {
		t.Errorf("vnc:tls stored: %q", got["vnc:tls"])
	}
}

// Thin provisioning stops at the overcommit ratio: 507 full.
func TestDiskOvercommitIsFull(t *testing.T) {
	e := newEnv(t, withStore(storage.WithDiskOvercommit(0.25)))
	var st unix.Statfs_t
	if err := unix.Statfs(e.store.Dir()+"/drives", &st); err != nil {
		t.Fatal(err)
	}
	room := int64(st.Blocks) * int64(st.Bsize) / 4
	c := e.user("alice", false)
	half := room / 2 &^ 4095
	d := c.post("/drives/create", "size "+itoa(half)).expect(t, 200).props(t)["drive"]
	c.post("/drives/create", "size "+itoa(half+1<<20)).expectError(t, 507, "full", "host disk")
	c.post("/drives/"+d+"/set", "size "+itoa(room+1<<20)).expectError(t, 507, "full", "host disk")
	c.post("/drives/"+d+"/set", "size "+itoa(room*3/5&^4095)).expect(t, 200)
	c.post("/drives/"+d+"/clone", "").expectError(t, 507, "full", "host disk")
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// A gzip body of zeros costs no disk, and cannot inflate past the drive.
func TestGzipWriteStaysSparseAndBounded(t *testing.T) {
	e := newEnv(t)
	c := e.user("alice", false)
	d := c.post("/drives/create", "size 256M").expect(t, 200).props(t)["drive"]
	var zipped bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&zipped, gzip.BestCompression)
	zw.Write(make([]byte, 256<<20))
	zw.Close()
	r := c.do("POST", "/drives/"+d+"/write", bytes.NewReader(zipped.Bytes()), "Content-Encoding", "gzip")
	r.expect(t, 204)
	var st syscall.Stat_t
	if err := syscall.Stat(e.store.DrivePath(d), &st); err != nil {
		t.Fatal(err)
	}
	if st.Blocks*512 > 1<<20 {
		t.Errorf("256 MiB of zeros took %d bytes of disk", st.Blocks*512)
	}
	// One byte more than the drive, gzipped: refused, nothing past the end.
	zipped.Reset()
	zw, _ = gzip.NewWriterLevel(&zipped, gzip.BestCompression)
	zw.Write(make([]byte, 256<<20+1))
	zw.Close()
	c.do("POST", "/drives/"+d+"/write", bytes.NewReader(zipped.Bytes()), "Content-Encoding", "gzip").expectError(t, 400, "usage", "past the end")
	if info, err := os.Stat(e.store.DrivePath(d)); err != nil || info.Size() != 256<<20 {
		t.Errorf("drive file after the refused write: %v %v", info.Size(), err)
	}
}
