package web

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"hearth/storage"
	"hearth/web/eh"
)

func TestHealth(t *testing.T) {
	e := newEnv(t)
	anon := &client{t: t, base: e.srv.URL}
	r := anon.get("/health").expect(t, 200)
	if r.body != "runtime test-runtime\nstatus ok\n" {
		t.Errorf("health %q", r.body)
	}
	r = anon.asJSON().get("/health").expect(t, 200)
	if r.body != `{"runtime":"test-runtime","status":"ok"}` {
		t.Errorf("health JSON %q", r.body)
	}
}

// /health says how VMs run where the backend runs them.
func TestHealthAccelerator(t *testing.T) {
	e := newEnv(t)
	srv := httptest.NewServer(New(Config{API: e.svc, Runtime: func() string { return "r" }, Accelerator: func() string { return "tcg" }}))
	t.Cleanup(srv.Close)
	r := (&client{t: t, base: srv.URL}).get("/health").expect(t, 200)
	if r.body != "accelerator tcg\nruntime r\nstatus ok\n" {
		t.Errorf("health %q, want the accelerator", r.body)
	}
}

func TestAuthentication(t *testing.T) {
	e := newEnv(t)
	alice := e.user("alice", false)
	for name, c := range map[string]*client{
		"none":         {t: t, base: e.srv.URL},
		"wrong secret": {t: t, base: e.srv.URL, login: alice.login, secret: strings.Repeat("0", 64)},
		"unknown user": {t: t, base: e.srv.URL, login: "nobody", secret: alice.secret},
	} {
		t.Run(name, func(t *testing.T) {
			for _, path := range []string{"/servers/list", "/drives/info", "/resources/list", "/servers/x/info"} {
				r := c.get(path)
				r.expectError(t, 401, "auth", "")
				if r.Header.Get("WWW-Authenticate") != `Basic realm="hearth"` {
					t.Errorf("WWW-Authenticate %q", r.Header.Get("WWW-Authenticate"))
				}
			}
		})
	}
	byName := &client{t: t, base: e.srv.URL, login: "alice", secret: alice.secret}
	byName.get("/servers/list").expect(t, 200)
	upper := &client{t: t, base: e.srv.URL, login: strings.ToUpper(alice.login), secret: alice.secret}
	upper.get("/servers/list").expect(t, 200)
}

func TestPathsPrefixAndSlashes(t *testing.T) {
	e := newEnv(t, withPrefix("/api/"))
	c := e.user("alice", false)
	c.post("/api/drives/create", "name d\nsize 1M").expect(t, 200)
	for _, p := range []string{"/api/drives/list", "/api//drives/list", "/api/drives/list/", "//api/drives//list"} {
		if r := c.get(p); r.StatusCode != 200 || strings.Count(r.body, "\n") != 1 {
			t.Errorf("GET %s: %d %q", p, r.StatusCode, r.body)
		}
	}
	c.get("/drives/list").expectError(t, 404, "missing", "")
	(&client{t: t, base: e.srv.URL}).get("/api/health").expect(t, 200)
	c.get("/nothing/here").expectError(t, 404, "missing", "/nothing/here")
}

func TestUnknownCommandsAndMethods(t *testing.T) {
	e := newEnv(t)
	c := e.user("alice", false)
	c.get("/servers/frobnicate").expectError(t, 404, "missing", "servers/frobnicate")
	c.get("/drives/"+"00000000-0000-0000-0000-000000000000"+"/frob").expectError(t, 404, "missing", "frob")
	c.get("/resources/disk/list").expectError(t, 404, "missing", "disk")
	c.get("/servers/create").expectError(t, 405, "method", "POST")
	c.get("/drives/create").expectError(t, 405, "method", "POST")
	c.get("/servers/00000000-0000-0000-0000-000000000000/start").expectError(t, 405, "method", "POST")
	c.do("PUT", "/servers/list", nil).expectError(t, 405, "method", "PUT")
	c.do("DELETE", "/drives/info", nil).expectError(t, 405, "method", "DELETE")
}

func TestDrives(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			e := newEnv(t)
			c := e.user("alice", false)
			body := "name Ubuntu 10.10\nsize 8G\nclaim:type shared\nreaders ffffffff-ffff-ffff-ffff-ffffffffffff\ntags tag1 tag2\nuser:foo bar\navoid 00000000-0000-0000-0000-000000000000\nencryption:cipher none\n"
			if format == "json" {
				c = c.asJSON()
				body = `{"name": "Ubuntu 10.10", "size": "8G", "claim:type": "shared", "readers": "ffffffff-ffff-ffff-ffff-ffffffffffff", "tags": "tag1 tag2", "user:foo": "bar", "encryption:cipher": "none"}`
			}
			r := c.post("/drives/create", body).expect(t, 200)
			d := r.props(t)
			id := d["drive"]
			want := eh.Props{"name": "Ubuntu 10.10", "size": "8589934592", "claim:type": "shared", "user": c.id, "status": "active", "tags": "tag1 tag2", "user:foo": "bar", "encryption:cipher": "none"}
			for k, v := range want {
				if d[k] != v {
					t.Errorf("create: %s = %q, want %q", k, d[k], v)
				}
			}
			if format == "json" {
				if !strings.Contains(r.body, `"size":8589934592`) || r.Header.Get("Content-Type") != "application/json" {
					t.Errorf("JSON drive: %s %q", r.Header.Get("Content-Type"), r.body)
				}
			} else if r.Header.Get("X-Elastic-Output") != "properties" {
				t.Errorf("X-Elastic-Output %q", r.Header.Get("X-Elastic-Output"))
			}
			c.post("/drives/create", body).expect(t, 200)

			list := c.get("/drives/list").expect(t, 200)
			if format == "json" {
				arr := list.jsonArray(t)
				if len(arr) != 2 || arr[0]["drive"] != id || len(arr[0]) != 1 {
					t.Errorf("JSON list %s", list.body)
				}
			} else if lines := strings.Split(strings.TrimSpace(list.body), "\n"); len(lines) != 2 || lines[0] != id {
				t.Errorf("text list %q", list.body)
			}
			all := c.get("/drives/info").expect(t, 200)
			if format == "json" {
				if arr := all.jsonArray(t); len(arr) != 2 || arr[0]["drive"] != id {
					t.Errorf("info all %s", all.body)
				}
			} else if blocks := all.blocks(t); len(blocks) != 2 || blocks[0]["drive"] != id {
				t.Errorf("info all %q", all.body)
			}
			full := c.get("/drives/"+id+"/info/full").expect(t, 200).props(t)
			if full["host"] != e.store.HostID() {
				t.Errorf("info/full host %q", full["host"])
			}
			c.get("/drives/info/full").expect(t, 200)
			// POST answers reads too (the shell tool POSTs everything).
			c.do("POST", "/drives/"+id+"/info", nil, "Content-Type", "application/x-www-form-urlencoded").expect(t, 200)

			setBody := "name renamed\nsize 1G\ntags\n"
			if format == "json" {
				setBody = `{"name":"renamed","size":1073741824,"tags":""}`
			}
			s := c.post("/drives/"+id+"/set", setBody).expect(t, 200).props(t)
			if s["name"] != "renamed" || s["size"] != "1073741824" || s["tags"] != "" || s["user:foo"] != "bar" {
				t.Errorf("set: %v", s)
			}
			if size, _ := fileSize(e.store.DrivePath(id)); size != 1<<30 {
				t.Errorf("image file %d bytes after resize", size)
			}
			c.post("/drives/"+id+"/destroy", "").expect(t, 204)
			c.get("/drives/"+id+"/info").expectError(t, 404, "missing", id)
			c.post("/drives/"+id+"/destroy", "").expectError(t, 404, "missing", id)
		})
	}
}

func fileSize(path string) (int64, error) {
	info, err := osStat(path)
	if err != nil {
		return 0, err
	}
	return info.Size(), nil
}

func TestDriveErrors(t *testing.T) {
	e := newEnv(t)
	c := e.user("alice", false)
	id := c.post("/drives/create", "name d\nsize 1M").expect(t, 200).props(t)["drive"]
	for _, tc := range []struct {
		path, body string
		status     int
		word, what string
	}{
		{"/drives/create", "name x", 400, "usage", "size"},
		{"/drives/create", "name x\nsize 12Q", 400, "usage", "size"},
		{"/drives/create", "name x\nsize -1", 400, "usage", "size"},
		{"/drives/create", "name x\nsize 1M\ncolour blue", 400, "usage", "colour"},
		{"/drives/create", "name x\nsize 1M\nclaim:type sometimes", 400, "usage", "claim:type"},
		{"/drives/create", "name x\nsize 1M\nreaders bob", 400, "usage", "readers"},
		{"/drives/create", `{"name": "x", "size": `, 400, "usage", ""},
		{"/drives/create", `["name"]`, 400, "usage", "array"},
		{"/drives/create", "size 1M\n" + strings.Repeat("user:x "+strings.Repeat("y", 1000)+"\n", 70), 400, "usage", "larger"},
		{"/drives/" + id + "/set", "encryption:cipher aes-xts-plain", 400, "usage", "encryption:cipher"},
		{"/drives/create", "size 1M\nencryption:cipher aes-xts-plain", 400, "usage", "encryption:cipher"},
		{"/drives/" + id + "/set", "drive 00000000-0000-0000-0000-000000000000", 400, "usage", "drive"},
		{"/drives/" + id + "/set", "size 1Z", 400, "usage", "size"},
		{"/drives/not-a-uuid/info", "", 404, "missing", "not-a-uuid"},
		{"/drives/00000000-0000-0000-0000-000000000000/set", "name x", 404, "missing", "00000000"},
		{"/drives/" + id + "/image/00000000-0000-0000-0000-000000000000", "", 404, "missing", "00000000"},
		{"/drives/" + id + "/image/" + id, "", 400, "usage", "itself"},
		{"/drives/" + id + "/image/" + id + "/bzip2", "", 400, "usage", "bzip2"},
		{"/drives/" + id + "/read/0/5M", "", 400, "usage", "size"},
		{"/drives/" + id + "/read/2M/1", "", 400, "usage", "offset"},
		{"/drives/" + id + "/read/x/1", "", 400, "usage", "offset"},
		{"/drives/" + id + "/write/2M", "x", 400, "usage", "offset"},
		{"/drives/" + id + "/write/1048575", "xy", 400, "usage", "past the end"},
	} {
		c.post(tc.path, tc.body).expectError(t, tc.status, tc.word, tc.what)
	}
	// Nothing partially applied: the drive is unchanged.
	d := c.get("/drives/" + id + "/info").props(t)
	if d["name"] != "d" || d["size"] != "1048576" {
		t.Errorf("drive changed by refused requests: %v", d)
	}
	if drives, _ := e.store.Drives(context.Background(), ""); len(drives) != 1 {
		t.Errorf("%d drives after refused creates", len(drives))
	}
	gzr := c.do("POST", "/drives/"+id+"/write", strings.NewReader("not gzip"), "Content-Encoding", "gzip")
	gzr.expectError(t, 400, "usage", "gzip")
	c.do("POST", "/drives/"+id+"/write", strings.NewReader("x"), "Content-Encoding", "br").expectError(t, 400, "usage", "br")
	big := gz(make([]byte, 2<<20))
	c.do("POST", "/drives/"+id+"/write", bytes.NewReader(big), "Content-Encoding", "gzip").expectError(t, 400, "usage", "past the end")
	broken := gz(bytes.Repeat([]byte("abc"), 1000))
	broken[len(broken)-5] ^= 0xff // bad CRC
	c.do("POST", "/drives/"+id+"/write", bytes.NewReader(broken), "Content-Encoding", "gzip").expectError(t, 400, "usage", "request body")
}

func TestDriveReadWrite(t *testing.T) {
	e := newEnv(t)
	c := e.user("alice", false)
	id := c.post("/drives/create", "name d\nsize 16M").expect(t, 200).props(t)["drive"]
	data := make([]byte, 6<<20)
	rand.Read(data)
	c.do("POST", "/drives/"+id+"/write", bytes.NewReader(data[:3<<20]), "Content-Type", "application/octet-stream", "Expect", "").expect(t, 204)
	c.do("POST", "/drives/"+id+"/write/3M", bytes.NewReader(gz(data[3<<20:])), "Content-Encoding", "gzip").expect(t, 204)
	var got []byte
	for off := 0; off < len(data); off += 4 << 20 {
		r := c.get(fmt.Sprintf("/drives/%s/read/%d/4M", id, off)).expect(t, 200)
		if r.Header.Get("Content-Type") != "application/octet-stream" {
			t.Errorf("read Content-Type %q", r.Header.Get("Content-Type"))
		}
		got = append(got, r.body...)
	}
	if !bytes.Equal(got[:len(data)], data) {
		t.Fatal("read back differs")
	}
	// Default offset and size; a read at the end is cut there; POST reads too.
	if r := c.get("/drives/"+id+"/read").expect(t, 200); len(r.body) != 4<<20 || r.body != string(data[:4<<20]) {
		t.Errorf("default read %d bytes", len(r.body))
	}
	if r := c.post("/drives/"+id+"/read/16777210/100", "").expect(t, 200); len(r.body) != 6 {
		t.Errorf("read at the end: %d bytes", len(r.body))
	}
	info := c.get("/drives/" + id + "/info").props(t)
	if info["write:requests"] != "2" || info["write:bytes"] != fmt.Sprint(len(data)) {
		t.Errorf("counters %v", info)
	}
}

func TestImaging(t *testing.T) {
	e := newEnv(t)
	c := e.user("alice", false).asJSON()
	src := c.post("/drives/create", `{"name":"src","size":"4M"}`).expect(t, 200).props(t)["drive"]
	data := make([]byte, 4<<20)
	rand.Read(data)
	c.do("POST", "/drives/"+src+"/write", bytes.NewReader(data)).expect(t, 204)
	dst := c.post("/drives/create", `{"name":"dst","size":"8M"}`).expect(t, 200).props(t)["drive"]
	r := c.post("/drives/"+dst+"/image/"+src, "").expect(t, 200)
	p := r.props(t)
	if p["drive"] != dst || p["imaging"] == "" || !strings.Contains(p["claimed"], ":imaging:") {
		t.Errorf("image answer %v", p)
	}
	waitImaged(t, c, dst)
	if got := c.get("/drives/" + dst + "/read/0/4M").body; got != string(data) {
		t.Error("imaged contents differ")
	}
	// gzip then gunzip round trip through the API.
	zipped := c.post("/drives/create", `{"name":"zipped","size":"8M"}`).expect(t, 200).props(t)["drive"]
	c.post("/drives/"+zipped+"/image/"+src+"/gzip", "").expect(t, 200)
	waitImaged(t, c, zipped)
	back := c.post("/drives/create", `{"name":"back","size":"4M"}`).expect(t, 200).props(t)["drive"]
	c.post("/drives/"+back+"/image/"+zipped+"/gunzip", "").expect(t, 200)
	waitImaged(t, c, back)
	if got := c.get("/drives/" + back + "/read/0/4M").body; got != string(data) {
		t.Error("gzip/gunzip round trip differs")
	}
	// Clone (CloudSigma 1.0): a new drive of the source's size.
	clone := c.post("/drives/"+src+"/clone", `{"name":"copy"}`).expect(t, 200).props(t)
	if clone["size"] != "4194304" || clone["name"] != "copy" {
		t.Errorf("clone %v", clone)
	}
	waitImaged(t, c, clone["drive"])
	if got := c.get("/drives/" + clone["drive"] + "/read/0/4M").body; got != string(data) {
		t.Error("clone differs")
	}
}

func waitImaged(t testing.TB, c *client, id string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if c.get("/drives/" + id + "/info").props(t)["imaging"] == "" {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("drive %s still imaging", id)
}

func TestImagingBusy(t *testing.T) {
	// The gate holds the copy in flight until the busy checks have run.
	copying, release := make(chan string, 1), make(chan struct{})
	gate := func(ctx context.Context, drive string) error {
		copying <- drive
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	e := newEnv(t, withStore(storage.WithImagingGate(gate)))
	c := e.user("alice", false)
	src := c.post("/drives/create", "name src\nsize 256M").expect(t, 200).props(t)["drive"]
	c.do("POST", "/drives/"+src+"/write", bytes.NewReader(bytes.Repeat([]byte{1}, 64<<20))).expect(t, 204)
	dst := c.post("/drives/create", "name dst\nsize 256M").expect(t, 200).props(t)["drive"]
	c.post("/drives/"+dst+"/image/"+src, "").expect(t, 200)
	if got := <-copying; got != dst {
		t.Fatalf("imaging job for %s, want %s", got, dst)
	}
	c.post("/drives/"+dst+"/image/"+src, "").expectError(t, 409, "busy", "dst is being imaged")
	c.post("/drives/"+dst+"/set", "name x").expectError(t, 409, "busy", "dst is being imaged")
	c.post("/drives/"+dst+"/destroy", "").expectError(t, 409, "busy", "dst is being imaged")
	c.post("/drives/"+dst+"/write", "x").expectError(t, 409, "busy", "dst is being imaged")
	close(release)
	waitImaged(t, c, dst)
}

func TestServers(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			e := newEnv(t, withGuests())
			c := e.user("alice", false)
			if format == "json" {
				c = c.asJSON()
			}
			drive := c.post("/drives/create", "name boot\nsize 64M").expect(t, 200).props(t)["drive"]
			body := fmt.Sprintf("name web\ncpu 2000\nmem 1024\nide:0:0 %s\nboot ide:0:0\nnic:0:model e1000\nnic:0:dhcp auto\nsmp auto\npersistent true\nvnc:ip auto\nvnc:password secret\n", drive)
			if format == "json" {
				body = fmt.Sprintf(`{"name":"web","cpu":2000,"mem":1024,"ide:0:0":%q,"boot":"ide:0:0","nic:0:model":"e1000","nic:0:dhcp":"auto","smp":"auto","persistent":true,"vnc":"auto","password":"secret"}`, drive)
			}
			r := c.post("/servers/create/stopped", body).expect(t, 200)
			s := r.props(t)
			id := s["server"]
			for k, v := range map[string]string{"status": "stopped", "name": "web", "cpu": "2000", "mem": "1024", "persistent": "true",
				"password": "secret", "vnc:password": "secret", "vnc": "auto", "vnc:ip": "auto", "user": c.id, "ide:0:0": drive} {
				if s[k] != v {
					t.Errorf("create/stopped: %s = %q, want %q", k, s[k], v)
				}
			}
			if format == "json" && (!strings.Contains(r.body, `"cpu":2000`) || !strings.Contains(r.body, `"persistent":"true"`)) {
				t.Errorf("JSON typing: %s", r.body)
			}
			list := c.get("/servers/list").expect(t, 200)
			if format == "json" {
				arr := list.jsonArray(t)
				if len(arr) != 1 || arr[0]["server"] != id || arr[0]["cpu"] != float64(2000) || arr[0]["mem"] != float64(1024) {
					t.Errorf("JSON list %s", list.body)
				}
			} else if list.body != id+" 2000 1024\n" {
				t.Errorf("text list %q", list.body)
			}
			if format == "json" {
				if arr := c.get("/servers/info").expect(t, 200).jsonArray(t); len(arr) != 1 {
					t.Errorf("info all: %d", len(arr))
				}
			}
			// Set on a stopped server: any key.
			s = c.post("/servers/"+id+"/set", "mem 2048\nsmp 2\nnic:0:model virtio").expect(t, 200).props(t)
			if s["mem"] != "2048" || s["smp"] != "2" || s["name"] != "web" {
				t.Errorf("set stopped: %v", s)
			}
			c.post("/servers/"+id+"/start", "").expect(t, 204)
			s = c.get("/servers/"+id+"/info").expect(t, 200).props(t)
			for k, v := range map[string]string{"status": "active", "started": "1700000000", "rx:bytes": "1000", "tx:bytes": "2000",
				"rx": "1000", "tx": "2000", "rx:packets": "10", "tx:packets": "20", "nic:0:rx:bytes": "1000", "smp:cores": "1", "nic:0:dhcp": "auto"} {
				if s[k] != v {
					t.Errorf("active info: %s = %q, want %q", k, s[k], v)
				}
			}
			if s["nic:0:dhcp:ip"] == "" || s["nic:0:ip"] != s["nic:0:dhcp:ip"] {
				t.Errorf("active address: %v", s)
			}
			d := c.get("/drives/" + drive + "/info").props(t)
			if d["claimed"] != e.store.HostID()+":guest:"+id+":ide:0:0" {
				t.Errorf("claimed %q", d["claimed"])
			}
			c.post("/drives/"+drive+"/destroy", "").expectError(t, 409, "busy", "boot is attached to running server web — stop web first")
			c.post("/servers/"+id+"/start", "").expectError(t, 409, "busy", "already")
			// Set on an active server: live keys apply, others are busy, nothing partial.
			s = c.post("/servers/"+id+"/set", "cpu 1500\nname web2\ntags a b\nuser:x y\npassword newpw").expect(t, 200).props(t)
			if s["cpu"] != "1500" || s["name"] != "web2" || s["vnc:password"] != "newpw" {
				t.Errorf("live set: %v", s)
			}
			if len(e.guests.applied) != 1 || e.guests.applied[0]["cpu"] != "1500" {
				t.Errorf("applied %v", e.guests.applied)
			}
			c.post("/servers/"+id+"/set", "cpu 1000\nmem 512").expectError(t, 409, "busy", "mem")
			c.post("/servers/"+id+"/set", "boot ide:0:0\nsmp 4").expectError(t, 409, "busy", "smp")
			if s := c.get("/servers/" + id + "/info").props(t); s["cpu"] != "1500" || s["mem"] != "2048" {
				t.Errorf("refused set applied partly: %v", s)
			}
			e.guests.applyErr = errors.New("cgroup write failed")
			c.post("/servers/"+id+"/set", "cpu 3000").expectError(t, 500, "failed", "cgroup")
			if s := c.get("/servers/" + id + "/info").props(t); s["cpu"] != "1500" {
				t.Errorf("refused live change kept: cpu %s", s["cpu"])
			}
			e.guests.applyErr = nil
			c.post("/servers/"+id+"/pause", "").expect(t, 204)
			if s := c.get("/servers/" + id + "/info").props(t); s["status"] != "paused" {
				t.Errorf("paused status %q", s["status"])
			}
			c.post("/servers/"+id+"/pause", "").expectError(t, 409, "busy", "not active")
			c.post("/servers/"+id+"/resume", "").expect(t, 204)
			c.post("/servers/"+id+"/resume", "").expectError(t, 409, "busy", "not paused")
			c.post("/servers/"+id+"/reset", "").expect(t, 204)
			if r := c.get("/servers/"+id+"/console").expect(t, 200); !strings.Contains(r.body, "login") {
				t.Errorf("console %q", r.body)
			}
			c.post("/servers/"+id+"/shutdown", "").expect(t, 204)
			if s := c.get("/servers/" + id + "/info").props(t); s["status"] != "stopped" || s["started"] != "" || s["rx"] != "" {
				t.Errorf("after shutdown: %v", s)
			}
			for _, action := range []string{"stop", "shutdown", "reset", "pause", "resume"} {
				c.post("/servers/"+id+"/"+action, "").expectError(t, 409, "busy", "stopped")
			}
			c.post("/servers/"+id+"/start", "").expect(t, 204)
			c.post("/servers/"+id+"/stop", "").expect(t, 204) // persistent: stays, stopped
			c.post("/servers/"+id+"/start", "").expect(t, 204)
			c.post("/servers/"+id+"/destroy", "").expect(t, 204) // destroy of an active server stops it first
			c.get("/servers/"+id+"/info").expectError(t, 404, "missing", id)
			if d := c.get("/drives/" + drive + "/info").props(t); d["claimed"] != "" {
				t.Errorf("drive still claimed: %v", d)
			}
			// A non-persistent server is destroyed by stop.
			id = c.post("/servers/create", "name tmp\ncpu 500\nmem 256").expect(t, 200).props(t)["server"]
			c.post("/servers/"+id+"/stop", "").expect(t, 204)
			c.get("/servers/"+id+"/info").expectError(t, 404, "missing", id)
		})
	}
}

func TestServerErrors(t *testing.T) {
	e := newEnv(t)
	c := e.user("alice", false)
	bob := e.user("bob", false)
	ctx := context.Background()
	mine := c.post("/drives/create", "name d\nsize 1M").expect(t, 200).props(t)["drive"]
	theirs := bob.post("/drives/create", "name d\nsize 1M").expect(t, 200).props(t)["drive"]
	shared := bob.post("/drives/create", "name lib\nsize 1M\nreaders "+c.id).expect(t, 200).props(t)["drive"]
	theirIP := bob.post("/resources/ip/create", "").expect(t, 200).props(t)["resource"]
	base := "name s\ncpu 1000\nmem 512\n"
	for _, tc := range []struct {
		body       string
		status     int
		word, what string
	}{
		{"name s\nmem 512", 400, "usage", "cpu"},
		{base + "cpu 5", 400, "usage", "cpu"},
		{base + "mem lots", 400, "usage", "mem"},
		{base + "smp 0", 400, "usage", "smp"},
		{base + "frobnicate yes", 400, "usage", "frobnicate"},
		{base + "password 123456789", 400, "usage", "password"},
		{base + "vnc:password 123456789", 400, "usage", "vnc:password"},
		{base + "ide:2:0 " + mine, 400, "usage", "ide:2:0"},
		{base + "block:9 " + mine, 400, "usage", "block:9"},
		{base + "ide:0:0 nonsense", 400, "usage", "ide:0:0"},
		{base + "nic:0:model e1000\nnic:0:mac zz:zz", 400, "usage", "nic:0:mac"},
		{base + "nic:0:model e1000\nnic:0:dhcp 999.1.1.1", 400, "usage", "nic:0:dhcp"},
		{base + "ide:0:0 00000000-0000-0000-0000-000000000000", 404, "missing", "ide:0:0"},
		{base + "ide:0:0 " + theirs, 404, "missing", "ide:0:0"},
		{base + "ide:0:0 " + shared, 400, "usage", "cdrom"},
		{base + "nic:0:model e1000\nnic:0:dhcp " + theirIP, 404, "missing", "nic:0:dhcp"},
		{base + "nic:1:model e1000\nnic:1:vlan 00000000-0000-0000-0000-000000000000", 404, "missing", "nic:1:vlan"},
		{"name s\ncpu 1000\nmem 512\nname t", 400, "usage", "name"},
		{"no-space-line-but-{json", 400, "usage", ""},
	} {
		c.post("/servers/create/stopped", tc.body).expectError(t, tc.status, tc.word, tc.what)
	}
	// A readable drive attached as a cdrom is fine.
	c.post("/servers/create/stopped", base+"ide:0:1 "+shared+"\nide:0:1:media cdrom").expect(t, 200)
	if list, _ := e.store.Servers(ctx, ""); len(list) != 1 {
		t.Errorf("%d servers after refused creates", len(list))
	}
	// Without a guest runtime: lifecycle is 500 system, create leaves nothing, the rest works.
	c.post("/servers/create", base).expectError(t, 500, "system", "no guest runtime")
	if list, _ := e.store.Servers(ctx, ""); len(list) != 1 {
		t.Errorf("%d servers after a create that could not start", len(list))
	}
	id := c.post("/servers/create/stopped", base).expect(t, 200).props(t)["server"]
	for _, action := range []string{"start"} {
		c.post("/servers/"+id+"/"+action, "").expectError(t, 500, "system", "no guest runtime")
	}
	c.get("/servers/"+id+"/console").expectError(t, 500, "system", "no guest runtime")
	c.post("/servers/"+id+"/set", "name other").expect(t, 200)
	c.post("/servers/"+id+"/destroy", "").expect(t, 204)
}

func TestServerStartFailure(t *testing.T) {
	e := newEnv(t, withGuests())
	c := e.user("alice", false)
	e.guests.startErr = fmt.Errorf("ide:0:0: no filesystem on the boot drive: %w", errBootDrive)
	dead := c.post("/servers/create", "name s\ncpu 1000\nmem 512").expect(t, 200).props(t)
	if dead["status"] != "dead" || !strings.Contains(dead["error"], "no filesystem") {
		t.Errorf("create of a guest that cannot boot: %v", dead)
	}
	c.post("/servers/"+dead["server"]+"/destroy", "").expect(t, 204)
	id := c.post("/servers/create/stopped", "name s\ncpu 1000\nmem 512\npersistent true").expect(t, 200).props(t)["server"]
	c.post("/servers/"+id+"/start", "").expectError(t, 500, "failed", "no filesystem")
	s := c.get("/servers/" + id + "/info").props(t)
	if s["status"] != "dead" || !strings.Contains(s["error"], "no filesystem") {
		t.Errorf("dead server info: %v", s)
	}
}

var errBootDrive = errors.New("unusable boot drive")

func TestResources(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			e := newEnv(t, withGuests())
			c := e.user("alice", false)
			if format == "json" {
				c = c.asJSON()
			}
			ip := c.post("/resources/ip/create", "name fixed").expect(t, 200).props(t)
			if ip["type"] != "ip" || ip["netmask"] != "255.255.0.0" || ip["gateway"] != "10.73.0.1" || ip["user"] != c.id || ip["name"] != "fixed" {
				t.Errorf("ip %v", ip)
			}
			c.get("/resources/ip/create").expect(t, 200) // CloudSigma clients allocate with GET
			vlan := c.post("/resources/vlan/create", "name backnet").expect(t, 200).props(t)
			if vlan["type"] != "vlan" || !eh.IsUUID(vlan["resource"]) || vlan["name"] != "backnet" {
				t.Errorf("vlan %v", vlan)
			}
			list := c.get("/resources/list").expect(t, 200)
			if format == "text" {
				if !strings.Contains(list.body, "ip "+ip["resource"]+"\n") || !strings.Contains(list.body, "vlan "+vlan["resource"]+"\n") {
					t.Errorf("list %q", list.body)
				}
			} else if arr := list.jsonArray(t); len(arr) != 3 || arr[0]["type"] != "ip" || arr[0]["resource"] == nil {
				t.Errorf("JSON list %s", list.body)
			}
			if r := c.get("/resources/ip/list").expect(t, 200); strings.Contains(r.body, "vlan") {
				t.Errorf("ip list %q", r.body)
			}
			if format == "json" {
				if arr := c.get("/resources/vlan/info").expect(t, 200).jsonArray(t); len(arr) != 1 {
					t.Errorf("vlan info %v", arr)
				}
				c.get("/resources/info").expect(t, 200)
			}
			c.get("/resources/ip/"+ip["resource"]+"/info").expect(t, 200)
			if r := c.post("/resources/vlan/"+vlan["resource"]+"/set", "name renamed").expect(t, 200).props(t); r["name"] != "renamed" {
				t.Errorf("vlan set %v", r)
			}
			c.post("/resources/ip/"+ip["resource"]+"/set", "netmask 255.0.0.0").expectError(t, 400, "usage", "netmask")
			c.post("/resources/ip/"+ip["resource"]+"/set", "colour red").expectError(t, 400, "usage", "colour")
			// A server using both.
			srv := c.post("/servers/create/stopped", fmt.Sprintf("name s\ncpu 1000\nmem 512\nnic:0:model e1000\nnic:0:dhcp %s\nnic:1:model virtio\nnic:1:vlan %s", ip["resource"], vlan["resource"])).expect(t, 200).props(t)
			c.post("/servers/create/stopped", "name t\ncpu 1000\nmem 512\nnic:0:model e1000\nnic:0:dhcp "+ip["resource"]).expectError(t, 409, "busy", "static IP "+ip["resource"]+" is already used by server s")
			c.post("/servers/"+srv["server"]+"/start", "").expect(t, 204)
			if s := c.get("/servers/" + srv["server"] + "/info").props(t); s["nic:0:dhcp:ip"] != ip["resource"] {
				t.Errorf("static address not shown: %v", s)
			}
			c.post("/resources/ip/"+ip["resource"]+"/destroy", "").expectError(t, 409, "busy", "static IP "+ip["resource"]+" is used by server s")
			c.post("/resources/vlan/"+vlan["resource"]+"/destroy", "").expectError(t, 409, "busy", "VLAN renamed is used by server s")
			c.post("/servers/"+srv["server"]+"/destroy", "").expect(t, 204)
			c.post("/resources/ip/"+ip["resource"]+"/destroy", "").expect(t, 204)
			c.get("/resources/vlan/"+vlan["resource"]+"/destroy").expect(t, 204) // CloudSigma GET
			c.get("/resources/ip/"+ip["resource"]+"/info").expectError(t, 404, "missing", ip["resource"])
			c.get("/resources/ip/1.2.3/info").expectError(t, 404, "missing", "1.2.3")
			c.get("/resources/vlan/nope/info").expectError(t, 404, "missing", "nope")
		})
	}
}

func TestTenantIsolation(t *testing.T) {
	e := newEnv(t, withGuests())
	alice := e.user("alice", false)
	bob := e.user("bob", false)
	admin := e.user("root", true)
	drive := alice.post("/drives/create", "name d\nsize 1M").expect(t, 200).props(t)["drive"]
	readable := alice.post("/drives/create", "name r\nsize 1M\nreaders "+bob.id).expect(t, 200).props(t)["drive"]
	srv := alice.post("/servers/create/stopped", "name s\ncpu 1000\nmem 512\npersistent true").expect(t, 200).props(t)["server"]
	ip := alice.post("/resources/ip/create", "").expect(t, 200).props(t)["resource"]
	vlan := alice.post("/resources/vlan/create", "").expect(t, 200).props(t)["resource"]
	bobDrive := bob.post("/drives/create", "name b\nsize 1M").expect(t, 200).props(t)["drive"]

	// Every endpoint on another user's object answers exactly as for a missing one.
	ghost := "0b0b0b0b-0000-4000-8000-000000000000"
	for _, p := range []struct{ method, path, ghostPath string }{
		{"GET", "/servers/%s/info", ""}, {"GET", "/servers/%s/info/full", ""}, {"POST", "/servers/%s/set", ""},
		{"POST", "/servers/%s/start", ""}, {"POST", "/servers/%s/stop", ""}, {"POST", "/servers/%s/shutdown", ""},
		{"POST", "/servers/%s/reset", ""}, {"POST", "/servers/%s/pause", ""}, {"POST", "/servers/%s/resume", ""},
		{"POST", "/servers/%s/destroy", ""}, {"GET", "/servers/%s/console", ""},
	} {
		a := bob.do(p.method, fmt.Sprintf(p.path, srv), strings.NewReader("name x"))
		b := bob.do(p.method, fmt.Sprintf(p.path, ghost), strings.NewReader("name x"))
		if a.StatusCode != 404 || a.word() != "missing" || strings.ReplaceAll(a.body, srv, "ID") != strings.ReplaceAll(b.body, ghost, "ID") {
			t.Errorf("%s %s: %d %q vs missing %d %q", p.method, p.path, a.StatusCode, a.body, b.StatusCode, b.body)
		}
	}
	for _, path := range []string{"/drives/%s/info", "/drives/%s/set", "/drives/%s/destroy", "/drives/%s/read/0/1", "/drives/%s/write", "/drives/" + bobDrive + "/image/%s", "/drives/%s/image/" + bobDrive, "/drives/%s/clone"} {
		a := bob.post(fmt.Sprintf(path, drive), "name x")
		b := bob.post(fmt.Sprintf(path, ghost), "name x")
		if a.StatusCode != 404 || a.word() != "missing" || strings.ReplaceAll(a.body, drive, "ID") != strings.ReplaceAll(b.body, ghost, "ID") {
			t.Errorf("%s: %d %q vs missing %d %q", path, a.StatusCode, a.body, b.StatusCode, b.body)
		}
	}
	for _, path := range []string{"/resources/ip/" + ip + "/info", "/resources/ip/" + ip + "/set", "/resources/ip/" + ip + "/destroy", "/resources/vlan/" + vlan + "/info", "/resources/vlan/" + vlan + "/destroy"} {
		bob.post(path, "name x").expectError(t, 404, "missing", "")
	}
	bob.post("/servers/create/stopped", "name s\ncpu 1000\nmem 512\nide:0:0 "+drive).expectError(t, 404, "missing", "ide:0:0")
	bob.post("/servers/create/stopped", "name s\ncpu 1000\nmem 512\nnic:1:model e1000\nnic:1:vlan "+vlan).expectError(t, 404, "missing", "nic:1:vlan")
	// Lists show only one's own.
	for _, path := range []string{"/servers/list", "/drives/list", "/resources/list", "/servers/info", "/drives/info", "/resources/info"} {
		r := bob.get(path).expect(t, 200)
		for _, id := range []string{srv, drive, ip, vlan, readable} {
			if strings.Contains(r.body, id) {
				t.Errorf("%s shows alice's %s to bob", path, id)
			}
		}
	}
	// readers: read and image, never change.
	bob.get("/drives/"+readable+"/info").expect(t, 200)
	bob.get("/drives/"+readable+"/read/0/1").expect(t, 200)
	bob.post("/drives/"+bobDrive+"/image/"+readable, "").expect(t, 200)
	waitImaged(t, bob, bobDrive)
	if r := bob.get("/drives/list/standard").expect(t, 200); !strings.Contains(r.body, readable) {
		t.Errorf("standard list for bob %q", r.body)
	}
	bob.post("/drives/"+readable+"/set", "name mine").expectError(t, 404, "missing", "not yours")
	bob.post("/drives/"+readable+"/destroy", "").expectError(t, 404, "missing", "not yours")
	bob.post("/drives/"+readable+"/write", "x").expectError(t, 404, "missing", "not yours")
	bob.post("/drives/"+readable+"/image/"+bobDrive, "").expectError(t, 404, "missing", "not yours")
	// An admin sees and acts on everything.
	for _, id := range []string{srv, drive, ip, bobDrive} {
		found := false
		for _, path := range []string{"/servers/list", "/drives/list", "/resources/list"} {
			found = found || strings.Contains(admin.get(path).body, id)
		}
		if !found {
			t.Errorf("admin does not see %s", id)
		}
	}
	admin.post("/servers/"+srv+"/set", "name by-admin").expect(t, 200)
	admin.post("/drives/"+drive+"/set", "name by-admin").expect(t, 200)
	admin.post("/servers/"+srv+"/destroy", "").expect(t, 204)
}

func TestLibraryDrives(t *testing.T) {
	e := newEnv(t)
	admin := e.user("root", true)
	alice := e.user("alice", false)
	ctx := context.Background()
	adminUser, _ := e.store.FirstAdmin(ctx)
	lib, err := e.store.CreateDriveFrom(ctx, storage.Drive{Owner: adminUser.ID, Name: "Debian", Library: true,
		Props: map[string]string{"readers": storage.Everyone, "claim:type": "shared", "media": "disk"}},
		func(path string) error { return writeFile(path, bytes.Repeat([]byte{9}, 1<<20)) })
	if err != nil {
		t.Fatal(err)
	}
	_ = admin
	if r := alice.get("/drives/list/standard").expect(t, 200); r.body != lib.ID+"\n" {
		t.Errorf("list/standard %q", r.body)
	}
	info := alice.get("/drives/info/standard").expect(t, 200).blocks(t)
	if len(info) != 1 || info[0]["claim:type"] != "shared" || info[0]["readers"] != storage.Everyone || info[0]["media"] != "disk" || info[0]["name"] != "Debian" {
		t.Errorf("info/standard %v", info)
	}
	for _, p := range []string{"/drives/standard/list", "/drives/standard/img/list"} {
		if r := alice.get(p).expect(t, 200); r.body != lib.ID+"\n" {
			t.Errorf("%s %q", p, r.body)
		}
	}
	if r := alice.get("/drives/standard/cd/list").expect(t, 200); r.body != "" {
		t.Errorf("cd list %q", r.body)
	}
	alice.get("/drives/standard/img/"+lib.ID+"/info").expect(t, 200)
	if r := alice.get("/drives/list").expect(t, 200); r.body != "" {
		t.Errorf("library drive in the user's own list: %q", r.body)
	}
	// libcloud's image step: gunzip of a raw library image copies it.
	d := alice.post("/drives/create", "name mine\nsize 2M").expect(t, 200).props(t)["drive"]
	alice.post("/drives/"+d+"/image/"+lib.ID+"/gunzip", "").expect(t, 200)
	waitImaged(t, alice, d)
	if r := alice.get("/drives/" + d + "/read/0/1M"); r.body != string(bytes.Repeat([]byte{9}, 1<<20)) {
		t.Error("library image copy differs")
	}
}

func TestDoubleDriveReference(t *testing.T) {
	e := newEnv(t, withGuests())
	c := e.user("alice", false)
	d := c.post("/drives/create", "name d\nsize 1M").expect(t, 200).props(t)["drive"]
	a := c.post("/servers/create/stopped", "name a\ncpu 1000\nmem 512\npersistent true\nide:0:0 "+d).expect(t, 200).props(t)["server"]
	b := c.post("/servers/create/stopped", "name b\ncpu 1000\nmem 512\npersistent true\nide:0:0 "+d).expect(t, 200).props(t)["server"]
	c.post("/servers/"+a+"/start", "").expect(t, 204)
	c.post("/servers/"+b+"/start", "").expectError(t, 409, "busy", "d (ide:0:0) is attached to running server a — stop a first")
	if r := c.get("/servers/" + b + "/info").props(t); r["status"] != "stopped" {
		t.Errorf("refused start changed status: %v", r["status"])
	}
	_ = http.StatusOK
}

// TestSetEchoedInfo: clients that send back the whole info they read, with
// one key changed, change just that key.
func TestSetEchoedInfo(t *testing.T) {
	e := newEnv(t, withGuests())
	c := e.user("alice", false)
	// Without a name, objects are named by their UUID (basingse creates drives with size only).
	d := c.post("/drives/create", "size 1M").expect(t, 200).props(t)
	if d["name"] != d["drive"] {
		t.Errorf("nameless drive shows name %q", d["name"])
	}
	info := c.get("/drives/" + d["drive"] + "/info").body
	got := c.post("/drives/"+d["drive"]+"/set", strings.Replace(info, "name "+d["drive"], "name echoed", 1)).expect(t, 200).props(t)
	if got["name"] != "echoed" || got["drive"] != d["drive"] {
		t.Errorf("echoed drive set: %v", got)
	}
	if stored, _ := e.store.Drive(context.Background(), d["drive"]); stored.Props["read:bytes"] != "" || stored.Props["drive"] != "" {
		t.Errorf("output keys stored as properties: %v", stored.Props)
	}
	s := c.post("/servers/create/stopped", "cpu 1000\nmem 512\npersistent true\nvnc auto\npassword pw\nnic:0:model e1000\nnic:0:dhcp auto").expect(t, 200).props(t)
	if s["name"] != s["server"] {
		t.Errorf("nameless server shows name %q", s["name"])
	}
	c.post("/servers/"+s["server"]+"/start", "").expect(t, 204)
	info = c.get("/servers/" + s["server"] + "/info").body
	got = c.post("/servers/"+s["server"]+"/set", strings.Replace(info, "cpu 1000", "cpu 1200", 1)).expect(t, 200).props(t)
	if got["cpu"] != "1200" || got["status"] != "active" {
		t.Errorf("echoed server set: %v", got)
	}
	if stored, _ := e.store.Server(context.Background(), s["server"]); stored.Config["status"] != "" || stored.Config["vnc:password"] != "" || stored.Config["rx"] != "" || stored.Config["nic:0:mac"] != "" {
		t.Errorf("output keys stored as configuration: %v", stored.Config)
	}
	r := c.post("/resources/vlan/create", "name v").expect(t, 200)
	got = c.post("/resources/vlan/"+r.props(t)["resource"]+"/set", strings.Replace(r.body, "name v", "name w", 1)).expect(t, 200).props(t)
	if got["name"] != "w" {
		t.Errorf("echoed vlan set: %v", got)
	}
}

func TestServerStartRefused(t *testing.T) {
	e := newEnv(t, withGuests())
	c := e.user("alice", false)
	e.guests.refuse = fmt.Errorf("drive in use elsewhere: %w", storage.ErrBusy)
	c.post("/servers/create", "name s\ncpu 1000\nmem 512").expectError(t, 409, "busy", "in use")
	if list, _ := e.store.Servers(context.Background(), ""); len(list) != 0 {
		t.Errorf("a refused create left %d servers", len(list))
	}
}

// TestEncodedSlashes: an encoded slash stays inside its segment, so an ID can
// never turn a command into another one.
func TestEncodedSlashes(t *testing.T) {
	e := newEnv(t, withPrefix("/api"))
	c := e.user("alice", false)
	c.post("/api/drives/create", "name d\nsize 1M").expect(t, 200)
	for _, p := range []string{"/api/servers/%2F/info", "/api/drives/%2F/info", "/api/drives/%2Finfo", "/api/resources/ip/%2F/info", "/api%2Fdrives/list", "/api/drives/list%2F"} {
		r := c.post(p, "")
		if r.StatusCode == 200 {
			t.Errorf("POST %s: 200 %q", p, r.body)
		}
	}
	c.get("/api/drives/%6Cist").expect(t, 200) // an encoded letter is still the letter
}

// Names: missing is accepted (basingse creates servers and drives without
// one, CS-1 VLANs with an empty body), empty is 400 usage naming the key,
// on create and on set, in text and JSON alike.
func TestNameGivenNeverEmpty(t *testing.T) {
	e := newEnv(t)
	c := e.user("alice", false)
	for _, tc := range []struct{ create, rest string }{
		{"/servers/create/stopped", "cpu 500\nmem 256\n"},
		{"/drives/create", "size 1M\n"},
		{"/resources/vlan/create", ""},
	} {
		id := c.post(tc.create, tc.rest).expect(t, 200).props(t)
		c.post(tc.create, "name \n"+tc.rest).expectError(t, 400, "usage", "key name")
		c.asJSON().post(tc.create, `{"name": "  "}`).expectError(t, 400, "usage", "key name")
		named := c.post(tc.create, "name web1\n"+tc.rest).expect(t, 200).props(t)
		var set string
		for _, k := range []string{"server", "drive", "resource"} {
			if named[k] != "" {
				set = strings.Replace(tc.create, "create", named[k]+"/set", 1)
				set = strings.TrimSuffix(set, "/stopped")
			}
		}
		c.post(set, "name \n").expectError(t, 400, "usage", "key name")
		if got := c.post(set, "name web2\n").expect(t, 200).props(t)["name"]; got != "web2" {
			t.Errorf("%s: renamed to %q", set, got)
		}
		if len(id) == 0 {
			t.Errorf("%s without a name: empty answer", tc.create)
		}
	}
}
