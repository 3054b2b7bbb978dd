package eh

// Bodies real clients send and parsers modelled on how real clients read
// answers (reference §3.7, §4.2, §4.5, §6).

import (
	"encoding/json"
	"errors"
	"maps"
	"strings"
	"testing"
)

func parse(t *testing.T, body string) Props {
	t.Helper()
	p, err := ParseProps(strings.NewReader(body), 0)
	if err != nil {
		t.Fatalf("ParseProps(%q): %v", body, err)
	}
	return p
}

func TestClientServerCreateBodies(t *testing.T) {
	tests := []struct {
		client, body string
		want         Props
	}{
		{"libcloud ElasticStack (JSON)",
			`{"name": "test api node", "cpu": 2000, "mem": 1024, "ide:0:0": "` + drive1 + `", "boot": "ide:0:0", "smp": "auto",
			  "nic:0:model": "virtio", "nic:0:dhcp": "auto", "vnc": "auto", "vnc:password": "vncpass1"}`,
			Props{"cpu": "2000", "password": "vncpass1", "vnc": "auto", "boot": "ide:0:0", "smp": "auto"}},
		{"libcloud ElasticStack, smp as a number",
			`{"name": "n", "cpu": 1000, "mem": 512, "ide:0:0": "` + drive1 + `", "boot": "ide:0:0", "smp": 2, "nic:0:model": "e1000", "nic:0:dhcp": "auto"}`,
			Props{"smp": "2"}},
		{"libcloud CS-1 (text, labelled JSON)",
			"name cloudsigma node\ncpu 1100\nmem 640\nide:0:0 " + drive1 + "\nboot ide:0:0\nsmp 1\nnic:0:model virtio\nnic:0:dhcp auto\nvnc:ip auto\nvnc:password testpass\n",
			Props{"vnc": "auto", "password": "testpass", "smp": "1"}},
		{"Psiphon (EH-1, JSON)",
			`{"ide:0:0": "` + drive1 + `", "name": "psiphon", "cpu": 2000, "mem": 1024, "nic:0:dhcp": "auto", "persistent": true,
			  "smp": "auto", "boot": "ide:0:0", "nic:0:model": "e1000"}`,
			Props{"persistent": "true"}},
		{"basingse (EH-2, JSON, no name)",
			`{"cpu": 500, "smp": "auto", "mem": 256, "persistent": true, "ide:0:0": "` + drive1 + `", "boot": "ide:0:0",
			  "nic:0:model": "e1000", "nic:0:dhcp": "auto", "vnc": "auto", "password": "aB3dE6gH", "user:basingse": "site-42"}`,
			Props{"password": "aB3dE6gH", "user:basingse": "site-42", "name": ""}},
		{"jclouds 1.0 mode (text, no trailing newline)",
			"name TestServer\ncpu 2000\nsmp auto\nmem 1024\npersistent false\nide:0:0 " + drive1 + "\nide:0:0:media disk\nboot ide:0:0\nnic:0:model e1000\nnic:0:dhcp auto\nnic:1:model e1000\nnic:1:vlan " + vlan1 + "\nvnc:ip auto\nvnc:password XXXXXXXX",
			Props{"ide:0:0:media": "disk", "nic:1:vlan": vlan1, "password": "XXXXXXXX"}},
		{"jclouds 2.0 mode",
			"name TestServer\ncpu 2000\nsmp auto\nmem 1024\npersistent false\nblock:0 " + drive1 + "\nboot block:0\nnic:0:model virtio\nnic:0:dhcp auto\nvnc auto\npassword XXXXXXXX",
			Props{"block:0": drive1, "vnc": "auto"}},
		{"fog serverlove (text, no Content-Type)",
			"name fog-server\ncpu 1000\nmem 512\npersistent true\nide:0:0 " + drive1 + "\nboot ide:0:0\nnic:0:model e1000\nnic:0:dhcp auto\nvnc auto\npassword pw\n",
			Props{"persistent": "true"}},
		{"KaarPux (OpenHosting, block devices, static address)",
			"name kaarpux\ncpu 2000\nmem 2048\nblock:0 " + drive1 + "\nblock:1 " + drive2 + "\nblock:2 " + vlan1 + "\nboot block:0\nnic:0:model virtio\nnic:0:dhcp 192.0.2.20\nsmp 2\n",
			Props{"nic:0:dhcp": "192.0.2.20", "block:2": vlan1}},
		{"EH-1 stopped server block echoed back (§4.5)",
			"status stopped\nname Demo\nmem 1024\nboot ide:0:0\nvnc:password HWbjvrg2\npersistent true\nsmp auto\nnic:0:dhcp auto\nnic:0:model e1000\nvnc:ip auto\nide:0:0 " + drive2 + "\ncpu 2000\nide:0:0:media cdrom\n",
			nil}, // refused below: status is read-only on create
	}
	for _, tt := range tests {
		t.Run(tt.client, func(t *testing.T) {
			in := parse(t, tt.body)
			got, err := NewServer(in)
			if tt.want == nil {
				if err == nil || !strings.Contains(err.Error(), "key status is read-only") {
					t.Fatalf("NewServer: %v, want status refused", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewServer: %v", err)
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("%s = %q, want %q", k, got[k], v)
				}
			}
		})
	}
}

func TestClientServerCreateRefusals(t *testing.T) {
	// libcloud's own fixture password is 11 characters: refused, never cut.
	in := parse(t, `{"name":"n","cpu":2000,"mem":1024,"vnc":"auto","vnc:password":"testvncpass"}`)
	if _, err := NewServer(in); err == nil || !strings.Contains(err.Error(), "key vnc:password: 11 characters") {
		t.Errorf("11-character password: %v", err)
	}
}

func TestClientDriveBodies(t *testing.T) {
	tests := []struct {
		client, body string
		want         Props
		refused      string // the answer is 400 usage containing this
	}{
		// jclouds asks for encryption Hearth does not give: refused, never
		// recorded as if it held.
		{"jclouds create_drive.txt", "name Ubuntu 10.10 Server Edition Linux 64bit Preinstalled System\nsize 8589934592\nclaim:type shared\n" +
			"readers ffffffff-ffff-ffff-ffff-ffffffffffff\ntags tag1 tag2\nuser:foo bar\nuser:baz raz\navoid " + drive1 + "\nencryption:cipher aes-xts-plain",
			nil, "key encryption:cipher"},
		{"KaarPux", "name downloads\nsize 8G\nencryption:cipher none\n", Props{"size": "8589934592"}, ""},
		{"shell tool worked example", "name TestDrive\nsize 10000000\n", Props{"size": "10000000"}, ""},
		{"upload tool with tier", "name disk.img\nsize 1073741824\ntier disk\n", Props{"tier": "disk"}, ""},
		{"upload tool with claim:type", "name disk.img\nsize 1073741824\nclaim:type exclusive\n", Props{"claim:type": "exclusive"}, ""},
		{"libcloud (JSON)", `{"name": "test drive", "size": "160G"}`, Props{"size": "171798691840"}, ""},
		{"basingse (JSON, no name)", `{"size": "2G", "user:basingse": "site-42"}`, Props{"size": "2147483648", "name": ""}, ""},
		{"fog-elastichosts (JSON number)", `{"name": "x", "size": 12345678}`, Props{"size": "12345678"}, ""},
		{"libcloud CS-1 clone", "name clone\nsize 20G\ndriveType ssd\n", Props{"tier": "ssd"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.client, func(t *testing.T) {
			got, err := NewDrive(parse(t, tt.body))
			if tt.refused != "" {
				if !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), tt.refused) {
					t.Fatalf("NewDrive: %v, want usage about %s", err, tt.refused)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewDrive: %v", err)
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("%s = %q, want %q", k, got[k], v)
				}
			}
		})
	}
}

// Real answers from the reference parse as single objects.
func TestRealBodiesParse(t *testing.T) {
	servers := "ide:0:0:write:requests 3698\nboot ide:0:0\nvnc:password HfHzVmLT\nide:0:0 4af85ed3-0caa-4736-8a26-a33d7de0a122\n" +
		"ide:0:0:read:requests 11154\nide:0:0:read:bytes 45686784\nvnc:ip 46.20.114.124\ntx:packets 31\ntx 2550\nrx 455530\nsmp 1\n" +
		"mem 1024\nnic:0:model e1000\nstatus active\nstarted 1291493868\nrx:packets 7583\nuser 2f6244eb-50bc-4403-847e-f03cc3706a1f\n" +
		"name jo\npersistent true\nnic:0:block tcp/43594 tcp/5902 udp/5060 tcp/5900 tcp/5901 tcp/21 tcp/22 tcp/23 tcp/25 tcp/110 tcp/143 tcp/43595\n" +
		"server f8bee9cd-8e4b-4a05-8593-1314e3bfe49b\nnic:0:dhcp 46.20.114.124\nide:0:0:write:bytes 15147008\ncpu 2000\n"
	if p := parse(t, servers); len(p) != 24 || p["nic:0:block"] == "" || p["name"] != "jo" {
		t.Errorf("EH-1 server block: %d keys: %q", len(p), p)
	}
	drive := "status active\nname Ubuntu 10.10 Server Edition Linux 64bit Preinstalled System\nread:bytes 4096\n" +
		"user 58ca3c1f-7629-4771-9b71-863f40153ba4\nencryption:cipher aes-xts-plain\ndrive b8171d28-755a-4271-b891-7998871a160e\n" +
		"write:bytes 8589938688\nclaim:type shared\nclaimed 00109617-2c6b-424b-9cfa-5b572c17bafe:guest:692cd1c7-a863-4a22-8170-fc6e6feb68af:ide:0:0 " +
		"000663ee-9fb6-4461-90f6-01327a4aff07:guest:f83b519f-feab-42cf-859c-f61495681ada:ide:0:1\n" +
		"readers ffffffff-ffff-ffff-ffff-ffffffffffff\nread:requests 1\nwrite:requests 2097153\nsize 8589934592\nuser:foo bar\nuser:baz raz\n"
	if p := parse(t, drive); len(p) != 15 || !strings.HasSuffix(p["claimed"], ":ide:0:1") {
		t.Errorf("EH-1 drive: %d keys: %q", len(p), p)
	}
	eh2 := `{"ide:0:0": "515b36ec-a674-46a5-9778-00c2b80fee59", "ide:0:0:read:bytes": "2068082688", "nic:0:dhcp": "69.25.178.8",
	  "nic:0:rx:bytes": 20022431991, "password": "Ygqk8kkQ", "persistent": "true", "smp": "auto", "smp:cores": 1,
	  "started": 1445824156, "status": "active", "type": "vm", "vnc": "auto", "vnc:ip": "69.25.178.8"}`
	if p := parse(t, eh2); p["nic:0:rx:bytes"] != "20022431991" || p["smp:cores"] != "1" || len(p) != 13 {
		t.Errorf("EH-2 JSON server: %q", p)
	}
	libcloud := `{"boot": "ide:0:0", "cpu": 2000, "nic:0:dhcp:ip": ["1.2.3.4", "1.2.3.5"], "rx": 679560, "tx:packets": "251"}`
	if p := parse(t, libcloud); p["nic:0:dhcp:ip"] != "1.2.3.4 1.2.3.5" || p["tx:packets"] != "251" {
		t.Errorf("libcloud fixture: %q", p)
	}
}

// liveServer builds what Hearth would show for a running libcloud-made server.
func liveServer(t *testing.T) (stoppedInfo, activeInfo Props) {
	t.Helper()
	cfg, err := NewServer(parse(t, `{"name": "test api node", "cpu": 2000, "mem": 1024, "ide:0:0": "`+drive1+`",
	  "boot": "ide:0:0", "smp": "auto", "nic:0:model": "virtio", "nic:0:dhcp": "auto", "vnc": "auto", "vnc:password": "vncpass1"}`))
	if err != nil {
		t.Fatal(err)
	}
	cfg["server"], cfg["user"], cfg["status"] = "b605ca90-c3e6-4cee-85f8-a8ebdf8f9903", "2164ce57-591c-43ee-ade5-e2fe0ee13c3e", "stopped"
	stoppedInfo = ServerInfo(cfg, nil)
	cfg["status"] = "active"
	activeInfo = ServerInfo(cfg, Props{"started": "1280723696", "smp:cores": "1", "vnc:ip": "216.151.208.174", "vnc:port": "5900",
		"nic:0:ip": "10.7.0.2", "nic:0:mac": "02:68:00:00:00:01", "nic:0:rx:bytes": "679560", "nic:0:rx:packets": "644",
		"nic:0:tx:bytes": "21271", "nic:0:tx:packets": "251", "ide:0:0:read:bytes": "299696128", "ide:0:0:read:requests": "73168",
		"ide:0:0:write:bytes": "321044480", "ide:0:0:write:requests": "78380"})
	return stoppedInfo, activeInfo
}

// libcloud's ElasticStack driver: GET /servers/info with Accept JSON, then
// _to_node on every element.
func TestLibcloudReadsServerInfo(t *testing.T) {
	stopped, active := liveServer(t)
	var nodes []map[string]any
	if err := json.Unmarshal(AppendJSONArray(nil, []Props{active, stopped}), &nodes); err != nil {
		t.Fatalf("not a JSON array: %v", err)
	}
	for i, n := range nodes {
		for _, k := range []string{"server", "name", "cpu", "mem", "boot", "status"} {
			if _, ok := n[k]; !ok {
				t.Errorf("node %d lacks %s", i, k)
			}
		}
		if _, ok := n["cpu"].(float64); !ok {
			t.Errorf("node %d: cpu is %T, libcloud and fog want a number", i, n["cpu"])
		}
		if _, ok := n["mem"].(float64); !ok {
			t.Errorf("node %d: mem is %T", i, n["mem"])
		}
		boot, _ := n["boot"].(string)
		if _, ok := n[boot]; !ok {
			t.Errorf("node %d: boot %q is not itself a key of the object", i, boot)
		}
		if n["vnc:password"] != "vncpass1" {
			t.Errorf("node %d: vnc:password = %v", i, n["vnc:password"])
		}
		if p, _ := n["persistent"].(string); p != "false" {
			t.Errorf("node %d: persistent = %#v, want the string \"false\"", i, n["persistent"])
		}
	}
	if ip, _ := nodes[0]["nic:0:dhcp:ip"].(string); ip != "10.7.0.2" {
		t.Errorf("active node: nic:0:dhcp:ip = %#v", nodes[0]["nic:0:dhcp:ip"])
	}
	if _, ok := nodes[0]["started"].(float64); !ok {
		t.Errorf("active node: started = %#v, want a number", nodes[0]["started"])
	}
	if _, ok := nodes[1]["nic:0:dhcp:ip"]; ok {
		t.Errorf("stopped node has an address")
	}
	if nodes[1]["smp"] != "auto" || nodes[0]["smp:cores"] != 1.0 {
		t.Errorf("smp %v / smp:cores %v", nodes[1]["smp"], nodes[0]["smp:cores"])
	}
	// Drive and device counters are strings (fog's schema), NIC counters numbers.
	if _, ok := nodes[0]["ide:0:0:read:bytes"].(string); !ok {
		t.Errorf("device counter is %T", nodes[0]["ide:0:0:read:bytes"])
	}
	for _, k := range []string{"rx", "tx", "rx:packets", "tx:packets", "nic:0:rx:bytes"} {
		if _, ok := nodes[0][k].(float64); !ok {
			t.Errorf("%s is %T, want a number", k, nodes[0][k])
		}
	}
}

// str2dicts is libcloud's text parser (libcloud.utils.misc): blocks split
// on blank lines, each line stripped, key before the first space.
func str2dicts(data string) []map[string]string {
	var out []map[string]string
	d := map[string]string{}
	for _, line := range strings.Split(data, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			if len(d) > 0 {
				out = append(out, d)
			}
			d = map[string]string{}
			continue
		}
		k, v, _ := strings.Cut(line, " ")
		d[k] = v
	}
	if len(d) > 0 {
		out = append(out, d)
	}
	return out
}

// jcloudsParse is jclouds' ListOfKeyValuesDelimitedByBlankLinesToListOfMaps:
// split on "\n\n", then lines, first space, \n unescaped.
func jcloudsParse(data string) []map[string]string {
	var out []map[string]string
	for _, block := range strings.Split(data, "\n\n") {
		if strings.TrimSpace(block) == "" {
			continue
		}
		m := map[string]string{}
		for _, line := range strings.Split(block, "\n") {
			if line == "" {
				continue
			}
			k, v, _ := strings.Cut(line, " ")
			m[k] = strings.ReplaceAll(v, `\n`, "\n")
		}
		out = append(out, m)
	}
	return out
}

// Text clients (libcloud CS-1, jclouds, the shell tool) read /servers/info.
func TestTextClientsReadServerInfo(t *testing.T) {
	stopped, active := liveServer(t)
	active["user:notes"] = "two\nlines"
	text := string(AppendBlocks(nil, []Props{active, stopped}))
	for name, blocks := range map[string][]map[string]string{"libcloud str2dicts": str2dicts(text), "jclouds": jcloudsParse(text)} {
		if len(blocks) != 2 {
			t.Fatalf("%s sees %d blocks, want 2", name, len(blocks))
		}
		for i, want := range []Props{active, stopped} {
			got := Props(blocks[i])
			if name == "libcloud str2dicts" {
				want = want.Clone()
				want["user:notes"] = `two\nlines` // libcloud does not unescape
				if i == 1 {
					delete(want, "user:notes")
				}
			}
			if !maps.Equal(got, want) {
				t.Errorf("%s block %d = %q\nwant %q", name, i, got, want)
			}
		}
	}
	// The keys each text client reads are there.
	for _, k := range []string{"status", "server", "name", "nic:0:dhcp", "cpu", "smp", "mem", "vnc:ip", "vnc:password", // CS-1
		"nic:0:dhcp:ip", "smp:cores", "password", "vnc"} { // jclouds 2.0
		if active[k] == "" {
			t.Errorf("active info lacks %s", k)
		}
	}
	if stopped["vnc:ip"] != "auto" {
		t.Errorf("stopped vnc:ip = %q, want auto (EH-1)", stopped["vnc:ip"])
	}
}

// Whatever ParseProps accepts, both renderings read back as the same object.
func TestRoundTrip(t *testing.T) {
	stopped, active := liveServer(t)
	drive, err := NewDrive(Props{"name": "d", "size": "8G", "install_notes": "step 1\nstep 2\\n literally", "description": `C:\n\ `})
	if err != nil {
		t.Fatal(err)
	}
	odd := Props{"k": " leading and trailing ", "q": `"quoted" {json}`, "u": "☃\u2028", "b": `\`, "bb": `\\n\`, "nl": "\n\n", "t": "a\tb",
		"cpu": "007", "smp": "auto", "size": "12"}
	for _, p := range []Props{stopped, active, drive, odd, {}} {
		for name, body := range map[string][]byte{"text": p.AppendText(nil), "json": p.AppendJSON(nil)} {
			got, err := ParseProps(strings.NewReader(string(body)), 0)
			if err != nil {
				t.Errorf("%s %q: %v", name, body, err)
				continue
			}
			if !maps.Equal(got, p) {
				t.Errorf("%s round trip:\n got %q\nwant %q\nbody %q", name, got, p, body)
			}
		}
	}
}
