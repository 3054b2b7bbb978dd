package e2e

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// want checks an answer's status, X-Elastic-Error word and that its message
// names what.
func (r reply) want(t testing.TB, status int, word, what string) {
	t.Helper()
	if r.err != nil || r.status != status || r.word != word || !strings.Contains(r.body, what) {
		t.Errorf("got %d %s %q (%v), want %d %s naming %q", r.status, r.word, strings.TrimSpace(r.body), r.err, status, word, what)
	}
}

// TestQuotas: limits an admin sets (through the API, and with `hearth user
// set` beside the running serve) refuse every request that would pass them
// with 402 billing naming the limit — server create and set, drive create,
// resize and clone (also of the library image), IP and VLAN create — and
// two racing creates never both take the last place. Another user is not
// affected.
func TestQuotas(t *testing.T) {
	h := startHearth(t)
	lib := h.importLibrary("64M")
	adminC := h.client(h.admin)
	alice := h.addUser("alice-"+randomHex(2), false)
	bob := h.addUser("bob-"+randomHex(2), false)

	adminC.post("/users/"+alice.u.id+"/set", "limit:servers 2\nlimit:cpu 1500\nlimit:mem 256\nlimit:drives 96M\nlimit:ips 1\nlimit:vlans 1").must(t, 200)
	alice.post("/users/"+alice.u.id+"/set", "limit:servers 100").want(t, 401, "auth", "admin")

	srv := alice.post("/servers/create/stopped", "name a\ncpu 1000\nmem 128").must(t, 200).props()["server"]
	alice.post("/servers/create/stopped", "name b\ncpu 1000\nmem 64").want(t, 402, "billing", "limit:cpu: 2000 MHz of 1500 MHz")
	alice.post("/servers/create/stopped", "name b\ncpu 500\nmem 256").want(t, 402, "billing", "limit:mem: 384 MB of 256 MB")
	alice.post("/servers/"+srv+"/set", "mem 512").want(t, 402, "billing", "limit:mem")
	alice.post("/servers/"+srv+"/set", "cpu 2000").want(t, 402, "billing", "limit:cpu")
	alice.post("/servers/create/stopped", "name b\ncpu 500\nmem 64").must(t, 200)
	alice.post("/servers/create/stopped", "name c\ncpu 100\nmem 32").want(t, 402, "billing", "limit:servers")

	boot := alice.post("/drives/create", "name boot\nsize 64M").must(t, 200).props()["drive"]
	alice.post("/drives/create", "name x\nsize 64M").want(t, 402, "billing", "limit:drives: 128M of 96M")
	alice.post("/drives/"+boot+"/set", "size 128M").want(t, 402, "billing", "limit:drives")
	alice.post("/drives/"+lib+"/clone", "name mine").want(t, 402, "billing", "limit:drives")
	alice.post("/drives/"+boot+"/clone", "").want(t, 402, "billing", "limit:drives")
	alice.post("/drives/"+boot+"/image/"+lib, "").must(t, 200) // imaging into one's own drive makes nothing
	alice.waitImaged(t, boot)

	alice.post("/resources/ip/create", "").must(t, 200)
	alice.post("/resources/ip/create", "").want(t, 402, "billing", "limit:ips")
	alice.post("/resources/vlan/create", "").must(t, 200)
	alice.post("/resources/vlan/create", "").want(t, 402, "billing", "limit:vlans")

	info := alice.get("/users/"+alice.u.id+"/info").must(t, 200).props()
	for k, v := range map[string]string{"limit:mem": "256", "usage:mem": "192", "usage:servers": "2", "usage:drives": strconv.Itoa(64 << 20)} {
		if info[k] != v {
			t.Errorf("alice's info: %s = %q, want %q", k, info[k], v)
		}
	}
	// Bob has no limits until the CLI sets one beside the running serve.
	for range 3 {
		bob.post("/servers/create/stopped", "name big\ncpu 8000\nmem 4096").must(t, 200)
	}
	if out, err := exec.Command(binary, "user", "set", bob.u.id, "limit:servers", "4", "--data", h.data).CombinedOutput(); err != nil {
		t.Fatalf("hearth user set: %v %s", err, out)
	}
	// Racing creates for the last place: exactly one wins.
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := bob.post("/servers/create/stopped", "name race\ncpu 100\nmem 32")
			mu.Lock()
			codes[r.status]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if codes[200] != 1 || codes[402] != 7 {
		t.Errorf("8 racing creates for 1 place: %v", codes)
	}
}

// TestDiskOvercommit: drives are thin-provisioned up to --disk-overcommit
// times the filesystem of DATA/drives; past it, create, resize and clone
// answer 507 full.
func TestDiskOvercommit(t *testing.T) {
	if !hasFlag("disk-overcommit") {
		t.Fatal("hearth serve has no --disk-overcommit")
	}
	h := startHearth(t, withArgs("--disk-overcommit", "0.01"))
	var st syscall.Statfs_t
	if err := syscall.Statfs(filepath.Join(h.data, "drives"), &st); err != nil {
		t.Fatal(err)
	}
	room := int64(st.Blocks) * st.Bsize / 100
	c := h.addUser("thin-"+randomHex(2), false)
	half := room / 2 &^ 4095
	d := c.post("/drives/create", "size "+strconv.FormatInt(half, 10)).must(t, 200).props()["drive"]
	c.post("/drives/create", "size "+strconv.FormatInt(half+(64<<20), 10)).want(t, 507, "full", "host disk")
	c.post("/drives/"+d+"/set", "size "+strconv.FormatInt(room+(64<<20), 10)).want(t, 507, "full", "host disk")
	c.post("/drives/"+d+"/set", "size "+strconv.FormatInt(room*3/5&^4095, 10)).must(t, 200)
	c.post("/drives/"+d+"/clone", "").want(t, 507, "full", "host disk")
	c.post("/drives/"+d+"/set", "size "+strconv.FormatInt(half/2&^4095, 10)).must(t, 200)
	c.post("/drives/"+d+"/clone", "").must(t, 200)
}

// zeroGzip is a gzip stream of n MiB of zeros, as one small member repeated
// (gzip readers read concatenated members as one stream): about 1 KiB per MiB.
func zeroGzip(t testing.TB, mib int) []byte {
	var one bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&one, gzip.BestCompression)
	zw.Write(make([]byte, 1<<20))
	zw.Close()
	return bytes.Repeat(one.Bytes(), mib)
}

// TestGzipWriteOfZeros: 1 GiB of zeros written gzipped into a drive costs
// no disk blocks (the image stays sparse), and a gzip body that inflates
// past the drive is refused (400 usage) without growing the image.
func TestGzipWriteOfZeros(t *testing.T) {
	h := startHearth(t)
	c := h.addUser("gz-"+randomHex(2), false)
	d := c.post("/drives/create", "size 1G").must(t, 200).props()["drive"]
	body := zeroGzip(t, 1024)
	c.do("POST", "/drives/"+d+"/write", bytes.NewReader(body), "Content-Encoding", "gzip").must(t, 204)
	path := filepath.Join(h.data, "drives", d+".img")
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	if st.Size != 1<<30 || st.Blocks*512 > 1<<20 {
		t.Errorf("after 1 GiB of gzipped zeros: size %d, %d bytes allocated", st.Size, st.Blocks*512)
	}
	if info := c.get("/drives/"+d+"/info").must(t, 200).props(); info["write:bytes"] != strconv.Itoa(1<<30) {
		t.Errorf("write:bytes %s", info["write:bytes"])
	}
	c.do("POST", "/drives/"+d+"/write", bytes.NewReader(zeroGzip(t, 1025)), "Content-Encoding", "gzip").want(t, 400, "usage", "past the end")
	if err := syscall.Stat(path, &st); err != nil || st.Size != 1<<30 {
		t.Errorf("after an oversize gzip write: size %d (%v)", st.Size, err)
	}
}

// TestUnkeptPromisesRefused: vnc:tls on and a drive cipher other than none
// are refused with 400 usage naming the key, never stored and ignored.
func TestUnkeptPromisesRefused(t *testing.T) {
	h := startHearth(t)
	c := h.addUser("keys-"+randomHex(2), false)
	c.post("/servers/create/stopped", "name s\ncpu 500\nmem 64\nvnc:tls on").want(t, 400, "usage", "vnc:tls")
	srv := c.post("/servers/create/stopped", "name s\ncpu 500\nmem 64").must(t, 200).props()["server"]
	c.post("/servers/"+srv+"/set", "vnc:tls on").want(t, 400, "usage", "vnc:tls")
	c.post("/drives/create", "size 1M\nencryption:cipher aes-xts-plain").want(t, 400, "usage", "encryption:cipher")
	d := c.post("/drives/create", "size 1M").must(t, 200).props()
	if d["encryption:cipher"] != "none" {
		t.Errorf("a new drive claims encryption:cipher %q", d["encryption:cipher"])
	}
}

// TestSharedDriveNotDefault: a drive a plain user makes readable by
// everyone is offered to another user's create-server form labelled with
// its owner, and never pre-selected; the admin's library image is.
func TestSharedDriveNotDefault(t *testing.T) {
	h := startHearth(t)
	lib := h.importLibrary("32M")
	alice := h.addUser("alice-"+randomHex(2), false)
	bob := h.addUser("bob-"+randomHex(2), false)
	shared := alice.post("/drives/create", "name aaa-first\nsize 1M\nreaders ffffffff-ffff-ffff-ffff-ffffffffffff").must(t, 200).props()["drive"]
	session, resp := dashboardLogin(t, h, bob.u.id, bob.u.secret)
	if session == nil {
		t.Fatalf("login: %d", resp.StatusCode)
	}
	req, _ := http.NewRequest("GET", h.url()+"/ui/servers/new", nil)
	req.AddCookie(session)
	res, err := sharedTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	selected := regexp.MustCompile(`<option value="lib:([^"]+)" selected>`).FindAllSubmatch(page, -1)
	if len(selected) != 1 || string(selected[0][1]) != lib {
		t.Errorf("pre-selected %q, want only the library image %s", selected, lib)
	}
	if !regexp.MustCompile(`<option value="lib:` + shared + `">[^<]*shared by alice-`).Match(page) {
		t.Errorf("alice's drive is not offered labelled as hers")
	}
}
