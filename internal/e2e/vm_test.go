package e2e

import (
	"bytes"
	"fmt"
	"html"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"hearth/internal/rfbtest"
)

// The tests here run `type vm` servers (issue 14) through the real binary
// as a user would: the images tools/vm-images.sh builds (`./task
// vm-images`) uploaded through the drive API, servers created and powered
// through the API, and what the VM shows read off its VGA screen over
// Hearth's VNC endpoint with the server's password (vga_test.go's reader).
// Under TCG (no /dev/kvm here) a boot to the banner takes about 5 s.

// uploadImage creates a drive of file's size rounded up to a MiB and writes
// file into it with the drive API, as upload clients do.
func (c *client) uploadImage(t testing.TB, name, file string) string {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	size := (len(data) + 1<<20 - 1) &^ (1<<20 - 1)
	id := c.post("/drives/create", fmt.Sprintf("name %s\nsize %d", name, size)).must(t, 200).props()["drive"]
	c.do("POST", "/drives/"+id+"/write/0", bytes.NewReader(data), "Content-Type", "application/octet-stream").must(t, 204)
	return id
}

// vmServer is a persistent `type vm` server's configuration: 128 MiB, an
// e1000 on the public network by DHCP, a VNC password, and the device
// lines given (drives, media, boot).
func vmServer(name, password string, devices ...string) string {
	return "name " + name + "\ntype vm\ncpu 1000\nmem 128\npersistent true\n" +
		"nic:0:model e1000\nnic:0:dhcp auto\npassword " + password + "\n" + strings.Join(devices, "\n") + "\n"
}

// vmScreen connects to a running server's VNC endpoint with its password.
func (c *client) vmScreen(t testing.TB, id, password string) *rfbtest.Viewer {
	t.Helper()
	info := c.get("/servers/"+id+"/info").must(t, 200).props()
	if info["vnc:port"] == "" {
		t.Fatalf("running server %s shows no vnc:port: %v", id, info)
	}
	return rfbtest.MustDial(t, "tcp", info["vnc:ip"]+":"+info["vnc:port"], password)
}

// checkVMGone adds to checkGone what a VM has of its own: DATA/run/ID (QEMU's
// sockets and throwaway layers) and any QEMU naming the server.
func (h *hearth) checkVMGone(t testing.TB, id string) {
	t.Helper()
	h.checkGone(t, id)
	if _, err := os.Stat(filepath.Join(h.data, "run", id)); err == nil {
		t.Errorf("stopped VM %s left DATA/run/%s", id, id)
	}
	for _, p := range h.processes() {
		if strings.Contains(p, "qemu") && strings.Contains(p, id) {
			t.Errorf("stopped VM %s left QEMU running: %s", id, p)
		}
	}
}

// activity is the server's activity log as its owner sees it on the
// dashboard's server page (newest first, one line per event).
func (c *client) activity(t *testing.T, id string) string {
	t.Helper()
	session, resp := dashboardLogin(t, c.h, c.u.id, c.u.secret)
	if session == nil {
		t.Fatalf("dashboard login refused: %d", resp.StatusCode)
	}
	req, _ := http.NewRequest("GET", c.h.url()+"/ui/servers/"+id, nil)
	req.AddCookie(session)
	page, err := c.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer page.Body.Close()
	body, _ := io.ReadAll(page.Body)
	_, list, ok := strings.Cut(string(body), `<ol class="activity">`)
	if page.StatusCode != 200 || !ok {
		t.Fatalf("server page: %d, no activity list in %.300q", page.StatusCode, body)
	}
	list, _, _ = strings.Cut(list, "</ol>")
	var lines []string
	for _, item := range strings.Split(list, "</li>") {
		if text := strings.Join(strings.Fields(html.UnescapeString(regexp.MustCompile(`<[^>]*>`).ReplaceAllString(item, " "))), " "); text != "" {
			lines = append(lines, text)
		}
	}
	return strings.Join(lines, "\n")
}

var addressLine = regexp.MustCompile(`(?m)^address: (\d+\.\d+\.\d+\.\d+)$`)

// TestVMGuest boots the test disk as a `type vm` server with an IDE disk and
// an e1000 and checks, from the VGA screen over VNC: the banner; the address
// the guest got by DHCP, which must be the one Hearth reports; the API's
// shutdown pressing the ACPI power button (the guest powers itself off long
// before the grace period would end); a second server booting the installer
// ISO from a CD drive ahead of the disk by the boot order; nothing left once
// both are gone.
func TestVMGuest(t *testing.T) {
	t.Parallel()
	disk, iso := vmImage(t, "disk.img"), vmImage(t, "installer.iso")
	// A long grace period: `stopped` long before it ends proves the guest
	// powered itself off rather than being killed.
	const grace = 60 * time.Second
	h := startHearth(t, withArgs("--shutdown-grace", grace.String()))
	c := h.addUser("vm-"+randomHex(2), false)
	password := h.secret("v" + randomHex(3))
	diskID := c.uploadImage(t, "e2e-disk", disk)
	isoID := c.uploadImage(t, "e2e-installer", iso)

	id := c.post("/servers/create/stopped", vmServer("vm-disk", password, "ide:0:0 "+diskID, "boot ide:0:0")).must(t, 200).props()["server"]
	if info := c.get("/servers/"+id+"/info").must(t, 200).props(); info["type"] != "vm" {
		t.Fatalf("created with type vm, info says type %q", info["type"])
	}
	c.post("/servers/"+id+"/start", "").must(t, 204)
	c.waitStatus(t, id, "active", time.Minute)
	screen := c.vmScreen(t, id, password)
	screen.WaitText(t, "hearth-e2e disk", 3*time.Minute)

	t.Run("dhcp", func(t *testing.T) {
		text := screen.WaitText(t, "address: ", 2*time.Minute)
		m := addressLine.FindStringSubmatch(text)
		if m == nil {
			t.Fatalf("no address line on the screen:\n%s", text)
		}
		info := c.get("/servers/"+id+"/info").must(t, 200).props()
		t.Logf("the guest shows address %s; Hearth reports nic:0:dhcp:ip %q, nic:0:ip %q", m[1], info["nic:0:dhcp:ip"], info["nic:0:ip"])
		if info["nic:0:dhcp:ip"] != m[1] {
			t.Errorf("the guest got %s by DHCP, Hearth reports nic:0:dhcp:ip %q", m[1], info["nic:0:dhcp:ip"])
		}
		// The serial console is the server's console: the same line there.
		c.waitConsole(t, id, "address: "+m[1], time.Minute)
	})

	t.Run("acpi-shutdown", func(t *testing.T) {
		asked := time.Now()
		c.post("/servers/"+id+"/shutdown", "").must(t, 204)
		c.waitStatus(t, id, "stopped", grace/2)
		t.Logf("stopped %s after the shutdown call (grace %s)", time.Since(asked).Round(time.Millisecond), grace)
		logs := h.logs.String()
		if strings.Contains(logs, "did not power off within the grace period") {
			t.Errorf("Hearth killed the VM instead of it powering off:\n%s", logs)
		}
		if !regexp.MustCompile(`guest powered off.*server=` + id).MatchString(logs) {
			t.Errorf("Hearth's log does not say the guest powered off:\n%s", logs)
		}
		activity := c.activity(t, id)
		t.Logf("the server's activity log:\n%s", activity)
		if !strings.Contains(activity, "shutdown requested") || !strings.Contains(activity, "active → stopped") || strings.Contains(activity, "kill") {
			t.Errorf("the activity log does not show a shutdown without a kill:\n%s", activity)
		}
		h.checkVMGone(t, id)
	})

	t.Run("installer-cd", func(t *testing.T) {
		// The disk comes first in device order; the boot key puts the CD first.
		cd := c.post("/servers/create/stopped", vmServer("vm-installer", password,
			"ide:0:0 "+diskID, "ide:0:1 "+isoID, "ide:0:1:media cdrom", "boot ide:0:1 ide:0:0")).must(t, 200).props()["server"]
		c.post("/servers/"+cd+"/start", "").must(t, 204)
		c.waitStatus(t, cd, "active", time.Minute)
		text := c.vmScreen(t, cd, password).WaitText(t, "hearth-e2e installer", 3*time.Minute)
		if !strings.Contains(text, "ISOLINUX") || strings.Contains(text, "hearth-e2e disk") {
			t.Errorf("not the CD's boot loader, or the disk booted:\n%s", text)
		}
		c.post("/servers/"+cd+"/destroy", "").must(t, 204)
		if r := c.get("/servers/" + cd + "/info"); r.status != 404 {
			t.Errorf("destroyed server answers %d", r.status)
		}
		h.checkVMGone(t, cd)
	})

	c.post("/servers/"+id+"/destroy", "").must(t, 204)
	h.checkVMGone(t, id)
}

// TestVMNotBootable starts a VM from a blank disk: the firmware's own
// message is on the screen, and the server stays active (the firmware
// keeps retrying) until it is stopped.
func TestVMNotBootable(t *testing.T) {
	t.Parallel()
	vmImage(t, "disk.img") // the same prerequisites as the other VM tests
	h := startHearth(t)
	c := h.addUser("vm-"+randomHex(2), false)
	password := h.secret("n" + randomHex(3))
	blank := c.post("/drives/create", "name blank\nsize 16M").must(t, 200).props()["drive"]
	id := c.post("/servers/create/stopped", vmServer("vm-blank", password, "ide:0:0 "+blank, "boot ide:0:0")).must(t, 200).props()["server"]
	c.post("/servers/"+id+"/start", "").must(t, 204)
	c.waitStatus(t, id, "active", time.Minute)
	text := c.vmScreen(t, id, password).WaitText(t, "No bootable device.", 2*time.Minute)
	t.Logf("the screen reads:\n%s", text)
	if info := c.get("/servers/"+id+"/info").must(t, 200).props(); info["status"] != "active" {
		t.Errorf("a VM with nothing to boot is %q, want active until stopped", info["status"])
	}
	c.post("/servers/"+id+"/stop", "").must(t, 204)
	c.waitStatus(t, id, "stopped", time.Minute)
	h.checkVMGone(t, id)
}

// kvmUsable says why /dev/kvm cannot run VMs here, or "" where it can.
func kvmUsable() string {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return "/dev/kvm cannot be opened read-write: " + err.Error()
	}
	f.Close()
	return ""
}

// TestVMKVM boots the test disk where /dev/kvm works: QEMU runs with KVM and
// the banner is on the screen.
func TestVMKVM(t *testing.T) {
	if why := kvmUsable(); why != "" {
		t.Skip(why)
	}
	t.Parallel()
	disk := vmImage(t, "disk.img")
	h := startHearth(t)
	c := h.addUser("vm-"+randomHex(2), false)
	password := h.secret("k" + randomHex(3))
	diskID := c.uploadImage(t, "e2e-disk", disk)
	id := c.post("/servers/create/stopped", vmServer("vm-kvm", password, "ide:0:0 "+diskID, "boot ide:0:0")).must(t, 200).props()["server"]
	c.post("/servers/"+id+"/start", "").must(t, 204)
	c.waitStatus(t, id, "active", time.Minute)
	c.vmScreen(t, id, password).WaitText(t, "hearth-e2e disk", time.Minute)
	var argv string
	for _, pid := range guestProcesses(id) {
		if cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil && bytes.Contains(cmdline, []byte("qemu-system")) {
			argv = string(bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '}))
		}
	}
	if !strings.Contains(argv, "-accel kvm") {
		t.Errorf("QEMU does not run with KVM: %q", argv)
	}
	c.post("/servers/"+id+"/destroy", "").must(t, 204)
	h.checkVMGone(t, id)
}
