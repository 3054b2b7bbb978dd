package web

// Replays of the request sequences of the real clients of reference §6:
// their methods, headers, body formats and what they read from the answers.

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"hearth/storage"
)

// raw sends one request with exactly the given headers (no defaults added
// beyond what net/http always sends) and returns status, headers and body.
func raw(t testing.TB, method, url string, body io.Reader, header map[string]string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

func libraryDrive(t testing.TB, e *env, content []byte) string {
	t.Helper()
	ctx := context.Background()
	admin, err := e.store.FirstAdmin(ctx)
	if err != nil {
		u, _, err := e.store.CreateUser(ctx, "libadmin", true)
		if err != nil {
			t.Fatal(err)
		}
		admin = u
	}
	d, err := e.store.CreateDriveFrom(ctx, storage.Drive{Owner: admin.ID, Name: "Library image", Library: true,
		Props: map[string]string{"readers": storage.Everyone, "claim:type": "shared", "media": "disk"}},
		func(path string) error { return writeFile(path, content) })
	if err != nil {
		t.Fatal(err)
	}
	return d.ID
}

// TestClientLibcloudElasticStack replays libcloud's ElasticStack driver
// (ElasticHosts, ServerLove, SkaliCloud): JSON in and out, explicit headers.
func TestClientLibcloudElasticStack(t *testing.T) {
	e := newEnv(t, withGuests())
	c := e.user("libcloud", false)
	image := libraryDrive(t, e, bytes.Repeat([]byte("boot"), 1<<18))
	h := map[string]string{
		"Accept":          "application/json",
		"Content-Type":    "application/json",
		"Authorization":   "Basic " + base64.StdEncoding.EncodeToString([]byte(c.login+":"+c.secret)),
		"User-Agent":      "libcloud/3.4.1 (ElasticHosts)",
		"Accept-Encoding": "gzip,deflate",
	}
	call := func(method, path, body string) (int, []byte) {
		var r io.Reader
		if body != "" {
			r = strings.NewReader(body)
		}
		status, hdr, b := raw(t, method, e.srv.URL+path, r, h)
		if status/100 == 2 && status != 204 && !json.Valid(b) {
			t.Fatalf("%s %s: 2xx body is not JSON (MalformedResponse): %q", method, path, b)
		}
		if status/100 != 2 && status != 401 && hdr.Get("X-Elastic-Error") == "" {
			t.Fatalf("%s %s: error %d without X-Elastic-Error", method, path, status)
		}
		return status, b
	}
	// list_nodes on an empty account: an array.
	if status, b := call("GET", "/servers/info", ""); status != 200 || string(b) != "[]" {
		t.Fatalf("list_nodes: %d %s", status, b)
	}
	// create_node: drive, image from the library with gunzip, wait, server.
	status, b := call("POST", "/drives/create", `{"name": "node1", "size": "1G"}`)
	var drive map[string]any
	if status != 200 || json.Unmarshal(b, &drive) != nil || drive["drive"] == nil {
		t.Fatalf("drives/create: %d %s", status, b)
	}
	id := drive["drive"].(string)
	if status, _ := call("POST", "/drives/"+id+"/image/"+image+"/gunzip", ""); status != 200 && status != 204 {
		t.Fatalf("Drive imaging failed: %d", status)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		_, b := call("GET", "/drives/"+id+"/info", "")
		var info map[string]any
		json.Unmarshal(b, &info)
		if _, imaging := info["imaging"]; !imaging {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("imaging never ended")
		}
	}
	body := fmt.Sprintf(`{"name": "node1", "cpu": 2000, "mem": 1024, "ide:0:0": %q, "boot": "ide:0:0", "smp": "auto", "nic:0:model": "e1000", "nic:0:dhcp": "auto", "vnc": "auto", "vnc:password": "s3cret"}`, id)
	status, b = call("POST", "/servers/create", body)
	var node map[string]any
	if status != 200 || json.Unmarshal(b, &node) != nil {
		t.Fatalf("servers/create: %d %s", status, b)
	}
	// _to_node: boot's value must be a key of the object; cpu, mem required.
	boot, _ := node["boot"].(string)
	if _, ok := node[boot]; !ok || node["status"] != "active" || node["cpu"] != float64(2000) || node["mem"] != float64(1024) {
		t.Fatalf("_to_node cannot read %s", b)
	}
	if ip, _ := node["nic:0:dhcp:ip"].(string); ip == "" || node["vnc:password"] != "s3cret" || node["vnc:ip"] == nil {
		t.Errorf("public IP / VNC missing: %s", b)
	}
	sid := node["server"].(string)
	_, b = call("GET", "/servers/info", "")
	var nodes []map[string]any
	if json.Unmarshal(b, &nodes) != nil || len(nodes) != 1 || nodes[0]["server"] != sid {
		t.Fatalf("list_nodes: %s", b)
	}
	if status, b := call("POST", "/servers/"+sid+"/set", `{"name": "renamed", "cpu": 1000}`); status != 200 || len(b) == 0 {
		t.Errorf("ex_set_node_configuration: %d %q", status, b)
	}
	for _, step := range []string{"reset", "shutdown"} {
		if status, _ := call("POST", "/servers/"+sid+"/"+step, ""); status != 204 {
			t.Errorf("%s: %d, want 204", step, status)
		}
	}
	// Non-persistent: shutdown destroyed it; destroy of another node, then the drive.
	status, b = call("POST", "/servers/create", fmt.Sprintf(`{"name": "n2", "cpu": 500, "mem": 256, "persistent": true, "ide:0:0": %q, "boot": "ide:0:0"}`, id))
	json.Unmarshal(b, &node)
	if status, _ := call("POST", "/servers/"+node["server"].(string)+"/destroy", ""); status != 204 {
		t.Errorf("destroy_node: %d", status)
	}
	if status, _ := call("POST", "/drives/"+id+"/destroy", ""); status != 204 {
		t.Errorf("ex_destroy_drive: %d", status)
	}
	// 401 regardless of body.
	h["Authorization"] = "Basic " + base64.StdEncoding.EncodeToString([]byte(c.login+":wrong"))
	if status, _, _ := raw(t, "GET", e.srv.URL+"/servers/info", nil, h); status != 401 {
		t.Errorf("bad credentials: %d", status)
	}
}

// TestClientShellTool replays the elastichosts shell tool: every command a
// POST, empty bodies with curl's form type or text/plain, -c input as
// octet-stream with an empty Expect, text output read with grep.
func TestClientShellTool(t *testing.T) {
	e := newEnv(t, withGuests())
	c := e.user("shell", false)
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte(c.login+":"+c.secret))
	uri := e.srv.URL + "/" // EHURI with a trailing slash; the tool strips one, users add more
	tool := func(input string, args ...string) (int, string) {
		url := strings.TrimSuffix(uri, "/") + "/" + strings.Join(args, "/")
		h := map[string]string{"Authorization": auth, "Accept": "*/*", "User-Agent": "curl/7.88.1"}
		if input == "" {
			h["Content-Type"] = "application/x-www-form-urlencoded"
		} else {
			h["Content-Type"], h["Expect"] = "application/octet-stream", ""
		}
		status, _, b := raw(t, "POST", url, strings.NewReader(input), h)
		return status, string(b)
	}
	status, out := tool("name TestDrive\nsize 10000000\n", "drives", "create")
	var drive string
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "drive ") {
			drive = strings.TrimPrefix(line, "drive ")
		}
	}
	if status != 200 || drive == "" {
		t.Fatalf("drives create: %d %q", status, out)
	}
	for _, args := range [][]string{{"drives", "list"}, {"drives", "info"}, {"drives", drive, "info"}, {"servers", "list"}, {"servers", "info"}, {"resources", "ip", "list"}} {
		if status, out := tool("", args...); status != 200 || strings.HasPrefix(out, "[") || strings.HasPrefix(out, "{") {
			t.Errorf("POST %v: %d %q", args, status, out)
		}
	}
	if _, out := tool("", "drives", "list"); out != drive+"\n" {
		t.Errorf("drives list %q", out)
	}
	status, out = tool(fmt.Sprintf("name shellsrv\ncpu 1000\nmem 512\nide:0:0 %s\nboot ide:0:0\npersistent true\nnic:0:model e1000\nnic:0:dhcp auto\n", drive), "servers", "create", "stopped")
	if status != 200 || !strings.Contains(out, "status stopped\n") {
		t.Fatalf("servers create stopped: %d %q", status, out)
	}
	server := strings.Fields(out[strings.Index(out, "server "):])[1]
	if status, _ := tool("", "servers", server, "start"); status != 204 {
		t.Errorf("start: %d", status)
	}
	if _, out := tool("", "servers", "list"); out != server+" 1000 512\n" {
		t.Errorf("servers list %q", out)
	}
	// JSON with -j: Content-Type and Accept application/json.
	h := map[string]string{"Authorization": auth, "Content-Type": "application/json", "Accept": "application/json", "Expect": ""}
	if status, _, b := raw(t, "POST", e.srv.URL+"/servers/"+server+"/info", strings.NewReader(""), h); status != 200 || !json.Valid(b) {
		t.Errorf("-j info: %d %q", status, b)
	}
	if status, out := tool("", "servers", server, "stop"); status != 204 || out != "" {
		t.Errorf("stop: %d %q", status, out)
	}
	// Errors are printed: one line with the reason.
	if status, out := tool("name x\n", "drives", "create"); status != 400 || !strings.Contains(out, "size") {
		t.Errorf("bad create: %d %q", status, out)
	}
}

// TestClientUploadDownload replays elastichosts-upload (4 MiB chunks, each
// gzipped, POSTed to write/OFFSET with octet-stream, gzip encoding and an
// empty Expect) and elastichosts-download (info for the size, then 4 MiB
// reads, the last one cut to the drive end), comparing checksums.
func TestClientUploadDownload(t *testing.T) {
	e := newEnv(t)
	c := e.user("upload", false)
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte(c.login+":"+c.secret))
	const chunk = 4 << 20
	file := make([]byte, 10<<20+12345) // not a multiple of the chunk
	rand.Read(file[:3<<20])
	rand.Read(file[7<<20:]) // a run of zeros in the middle, as disk images have
	status, _, b := raw(t, "POST", e.srv.URL+"/drives/create", strings.NewReader(fmt.Sprintf("name upload.img\nsize %d\nclaim:type exclusive\n", len(file))),
		map[string]string{"Authorization": auth, "Content-Type": "text/plain"})
	if status != 200 {
		t.Fatalf("create: %d %s", status, b)
	}
	var drive string
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "drive "); ok {
			drive = v
		}
	}
	for off := 0; off < len(file); off += chunk {
		part := gz(file[off:min(off+chunk, len(file))])
		req, _ := http.NewRequest("POST", fmt.Sprintf("%s/drives/%s/write/%d", e.srv.URL, drive, off), bytes.NewReader(part))
		req.Header.Set("Authorization", auth)
		req.Header.Set("Content-Type", "application/octet-stream")
		req.Header.Set("Content-Encoding", "gzip")
		req.Header.Set("Expect", "")
		req.ContentLength = int64(len(part))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 204 {
			t.Fatalf("write at %d: %d", off, resp.StatusCode)
		}
	}
	// Download.
	status, _, b = raw(t, "GET", e.srv.URL+"/drives/"+drive+"/info", nil, map[string]string{"Authorization": auth})
	var size int64
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "size "); ok {
			size, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	if status != 200 || size != int64(len(file)) {
		t.Fatalf("info: %d size %d", status, size)
	}
	hash := sha256.New()
	for off := int64(0); off < size; off += chunk {
		n := min(chunk, size-off)
		status, _, part := raw(t, "GET", fmt.Sprintf("%s/drives/%s/read/%d/%d", e.srv.URL, drive, off, n), nil, map[string]string{"Authorization": auth})
		if status != 200 || int64(len(part)) != n {
			t.Fatalf("read at %d: %d, %d bytes", off, status, len(part))
		}
		hash.Write(part)
	}
	if want := sha256.Sum256(file); !bytes.Equal(hash.Sum(nil), want[:]) {
		t.Fatal("downloaded checksum differs from the uploaded file's")
	}
}

// TestClientJclouds replays jclouds' elasticstack API ("2.0" mode): text in
// (text/plain, no trailing newline) and out, create/stopped then start, drive
// reads as POST with Accept octet-stream, waiting for imaging until claimed
// is empty, 404 on a destroyed server's info.
func TestClientJclouds(t *testing.T) {
	e := newEnv(t, withGuests())
	c := e.user("jclouds", false)
	image := libraryDrive(t, e, bytes.Repeat([]byte{0x5a}, 1<<20))
	h := map[string]string{"Accept": "text/plain", "Content-Type": "text/plain", "Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte(c.login+":"+c.secret))}
	parse := func(b []byte) []map[string]string {
		var out []map[string]string
		for _, block := range strings.Split(string(b), "\n\n") {
			m := map[string]string{}
			for _, line := range strings.Split(block, "\n") {
				if k, v, ok := strings.Cut(line, " "); ok {
					m[k] = strings.ReplaceAll(v, `\n`, "\n")
				}
			}
			if len(m) > 0 {
				out = append(out, m)
			}
		}
		return out
	}
	call := func(method, path, body string) (int, []map[string]string) {
		status, _, b := raw(t, method, e.srv.URL+path, strings.NewReader(body), h)
		return status, parse(b)
	}
	status, objs := call("POST", "/drives/create", "name jclouds-drive\nsize 4194304\nclaim:type exclusive\nreaders ffffffff-ffff-ffff-ffff-ffffffffffff\ntags tag1 tag2\nuser:foo bar")
	if status != 200 || len(objs) != 1 || objs[0]["drive"] == "" || objs[0]["user:foo"] != "bar" {
		t.Fatalf("createDrive: %d %v", status, objs)
	}
	drive := objs[0]["drive"]
	if status, _ := call("POST", "/drives/"+drive+"/image/"+image+"/gunzip", ""); status != 200 {
		t.Fatalf("imageDrive: %d", status)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		_, objs := call("GET", "/drives/"+drive+"/info", "")
		if objs[0]["claimed"] == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("DriveClaimed never false")
		}
	}
	h["Accept"] = "application/octet-stream"
	status, hdr, data := raw(t, "POST", e.srv.URL+"/drives/"+drive+"/read/0/1048576", strings.NewReader(""), h)
	if status != 200 || hdr.Get("Content-Type") != "application/octet-stream" || !bytes.Equal(data, bytes.Repeat([]byte{0x5a}, 1<<20)) {
		t.Fatalf("readDrive: %d %s %d bytes", status, hdr.Get("Content-Type"), len(data))
	}
	h["Accept"] = "text/plain"
	status, objs = call("POST", "/servers/create/stopped", "name jclouds-srv\ncpu 1000\nsmp auto\nmem 512\npersistent false\nboot ide:0:0\nide:0:0 "+drive+"\nnic:0:model e1000\nnic:0:dhcp auto\nvnc auto\npassword Ygqk8kkQ")
	if status != 200 || objs[0]["status"] != "stopped" {
		t.Fatalf("createServer: %d %v", status, objs)
	}
	server := objs[0]["server"]
	if status, _ := call("POST", "/servers/"+server+"/start", ""); status != 204 {
		t.Fatalf("start: %d", status)
	}
	status, objs = call("GET", "/servers/info", "")
	if status != 200 || len(objs) != 1 || objs[0]["nic:0:dhcp:ip"] == "" || objs[0]["smp:cores"] == "" || objs[0]["password"] != "Ygqk8kkQ" {
		t.Fatalf("listServerInfo: %v", objs)
	}
	if _, objs := call("GET", "/drives/"+drive+"/info", ""); !strings.Contains(objs[0]["claimed"], ":guest:"+server+":ide:0:0") {
		t.Errorf("claimed token %q", objs[0]["claimed"])
	}
	status, _, b := raw(t, "GET", e.srv.URL+"/servers/list", nil, h)
	if status != 200 || string(b) != server+" 1000 512\n" {
		t.Errorf("listServers: %q", b)
	}
	if status, _ := call("POST", "/servers/"+server+"/destroy", ""); status != 204 {
		t.Errorf("destroyServer: %d", status)
	}
	if status, _ := call("GET", "/servers/"+server+"/info", ""); status != 404 {
		t.Errorf("getServerInfo after destroy: %d, want 404 (null)", status)
	}
	if status, _ := call("POST", "/drives/"+drive+"/destroy", ""); status != 204 {
		t.Errorf("destroyDrive: %d", status)
	}
}

// TestClientFog replays fog's serverlove requests: KEY VALUE bodies with no
// Content-Type at all, Accept: application/json, and its typed JSON reads.
func TestClientFog(t *testing.T) {
	e := newEnv(t, withGuests())
	c := e.user("fog", false)
	h := map[string]string{"Accept": "application/json", "Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte(c.login+":"+c.secret))}
	status, _, b := raw(t, "POST", e.srv.URL+"/drives/create", strings.NewReader("name fogdrive\nsize 24000000000"), h)
	var drive map[string]any
	if status != 200 || json.Unmarshal(b, &drive) != nil {
		t.Fatalf("create_image: %d %s", status, b)
	}
	if _, ok := drive["size"].(float64); !ok {
		t.Errorf("drive size is not an Integer: %s", b)
	}
	for _, k := range []string{"read:bytes", "write:requests"} {
		if _, ok := drive[k].(string); !ok {
			t.Errorf("drive %s is not a String: %s", k, b)
		}
	}
	status, _, b = raw(t, "POST", e.srv.URL+"/servers/create/stopped", strings.NewReader(fmt.Sprintf("name fogserver\ncpu 1000\nmem 512\npersistent true\nide:0:0 %s\nboot ide:0:0", drive["drive"])), h)
	var server map[string]any
	if status != 200 || json.Unmarshal(b, &server) != nil {
		t.Fatalf("create_server: %d %s", status, b)
	}
	if _, ok := server["cpu"].(float64); !ok || server["persistent"] != "true" {
		t.Errorf("server typing: %s", b)
	}
	if _, ok := server["mem"].(float64); !ok {
		t.Errorf("mem is not an Integer: %s", b)
	}
	id := server["server"].(string)
	status, _, b = raw(t, "POST", e.srv.URL+"/servers/"+id+"/set", strings.NewReader("name renamed"), h)
	if status != 200 || !json.Valid(b) {
		t.Errorf("update_server: %d %s", status, b)
	}
	for _, step := range []string{"start", "reset", "stop", "destroy"} {
		if status, _, _ := raw(t, "POST", e.srv.URL+"/servers/"+id+"/"+step, nil, h); status != 204 {
			t.Errorf("%s: %d", step, status)
		}
	}
	if status, _, _ := raw(t, "POST", e.srv.URL+"/drives/"+drive["drive"].(string)+"/destroy", nil, h); status != 204 {
		t.Errorf("destroy_image: %d", status)
	}
}
