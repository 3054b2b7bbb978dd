package qemu

import (
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"hearth/internal/ehkeys"
	"hearth/vmm/guest"
)

// Binary is the QEMU system emulator Command runs, from Debian's
// qemu-system-x86 package.
const Binary = "qemu-system-x86_64"

// Package names the Debian package that installs Binary, for the message of
// a host without it.
const Package = "qemu-system-x86"

// TCGCacheMiB is the translated-code cache of a VM under TCG. QEMU 7.2's
// default is 1 GiB, allocated as the guest runs new code: memory the VM's
// container limit would have to leave room for.
const TCGCacheMiB = 64

// Socket and file names inside VM.RunDir.
const (
	QMPSocket = "qmp.sock" // QMP monitor (Client)
	VNCSocket = "vnc.sock" // the VGA display, RFB without authentication: only Hearth reaches it
)

// MaxSMP is the most vCPUs the i440fx machine takes ("Invalid SMP CPUs 300.
// The max CPUs supported by machine 'pc-i440fx-7.2' is 255").
const MaxSMP = 255

// VM is what a full virtual machine is made of, in the ElasticHosts keys'
// terms: drives by device key and media, the boot order as device keys, NIC
// models as nic:N:model values.
type VM struct {
	Name   string // -name guest=; the server's id
	SMP    int    // vCPUs, 1…MaxSMP
	Mem    int64  // guest RAM in MiB
	KVM    bool   // hardware virtualisation (/dev/kvm usable); false = TCG
	RunDir string // absolute; holds QMPSocket, VNCSocket and (through Env) the throwaway layers of read-only disks
	Drives []Drive
	// Boot lists device keys in boot order (the server's boot key); empty =
	// the first disk in device order, as ehkeys.BootDevice chooses.
	Boot []string
	NICs []NIC
}

// Drive is one drive attachment.
type Drive struct {
	Key      string // ide:B:U, ata:0:U, scsi:0:U or block:N
	Image    string // raw image file or block device on the host
	CDROM    bool   // :media cdrom: a CD drive, always read-only
	ReadOnly bool   // the guest must never write Image: a disk gets a throwaway layer (snapshot=on)
}

// NIC is one network card, joined to a tap device the caller made.
type NIC struct {
	Index int    // nic:N
	Model string // nic:N:model: e1000, rtl8139 or virtio
	MAC   string // aa:bb:cc:dd:ee:ff
	Tap   string // host tap interface name
}

// nicDevices maps nic:N:model values to QEMU devices.
var nicDevices = map[string]string{"e1000": "e1000", "rtl8139": "rtl8139", "virtio": "virtio-net-pci"}

var (
	namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,75}$`)
	macPattern  = regexp.MustCompile(`^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$`)
	tapPattern  = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,15}$`)
)

// Validate names the first key at fault, wrapping guest.ErrInvalid.
func (vm VM) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), guest.ErrInvalid)
	}
	switch {
	case !namePattern.MatchString(vm.Name):
		return bad("name %q: letters, digits, '_', '.', '-' only, at most 76", vm.Name)
	case vm.SMP < 1 || vm.SMP > MaxSMP:
		return bad("smp %d: a VM has 1–%d vCPUs", vm.SMP, MaxSMP)
	case vm.Mem < 1:
		return bad("mem %d: a VM needs memory", vm.Mem)
	case !filepath.IsAbs(vm.RunDir):
		return bad("run directory %q is not absolute", vm.RunDir)
	}
	keys := map[string]bool{}
	for _, d := range vm.Drives {
		if _, err := ehkeys.DeviceAddress(d.Key); err != nil {
			return bad("key %s: %v", d.Key, err)
		}
		if keys[d.Key] {
			return bad("key %s attached twice", d.Key)
		}
		keys[d.Key] = true
		if !filepath.IsAbs(d.Image) {
			return bad("key %s: image %q is not an absolute path", d.Key, d.Image)
		}
	}
	for _, k := range vm.Boot {
		if !keys[k] {
			return bad("key boot: %s is no attached drive", k)
		}
	}
	nics := map[int]bool{}
	for _, n := range vm.NICs {
		key := fmt.Sprintf("nic:%d", n.Index)
		switch {
		case n.Index < 0 || n.Index > 9 || nics[n.Index]:
			return bad("%s: index out of range or used twice", key)
		case nicDevices[n.Model] == "":
			return bad("key %s:model: %q is not e1000, rtl8139 or virtio", key, n.Model)
		case !macPattern.MatchString(n.MAC):
			return bad("key %s:mac: %q is not a MAC address", key, n.MAC)
		case !tapPattern.MatchString(n.Tap):
			return bad("%s: tap %q is not an interface name", key, n.Tap)
		}
		nics[n.Index] = true
	}
	return nil
}

// Command returns QEMU's argv (Binary first) for vm; run it with Env(vm)
// and the serial console on its stdin and stdout (a terminal, or pipes).
func Command(vm VM) ([]string, error) {
	if err := vm.Validate(); err != nil {
		return nil, err
	}
	accel := fmt.Sprintf("tcg,tb-size=%d", TCGCacheMiB)
	if vm.KVM {
		accel = "kvm"
	}
	args := []string{Binary,
		"-nodefaults", "-no-user-config",
		"-name", "guest=" + escape(vm.Name),
		"-machine", "pc",
		"-accel", accel,
	}
	if vm.KVM {
		args = append(args, "-cpu", "host")
	}
	args = append(args,
		"-smp", strconv.Itoa(vm.SMP),
		"-m", strconv.FormatInt(vm.Mem, 10),
		// QEMU's own seccomp filter: a guest that escapes into QEMU still
		// cannot exec, raise privileges or use obsolete system calls.
		"-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
		"-display", "none", "-vga", "std",
		"-vnc", "unix:"+escape(filepath.Join(vm.RunDir, VNCSocket)),
		// An absolute pointer, so a VNC viewer's cursor is the guest's.
		"-usb", "-device", "usb-tablet",
		"-qmp", "unix:"+escape(filepath.Join(vm.RunDir, QMPSocket))+",server=on,wait=off",
		// signal=off: a Ctrl-C typed on the console goes to the guest
		// instead of killing QEMU.
		"-chardev", "stdio,id=serial0,signal=off", "-serial", "chardev:serial0",
	)
	args = append(args, driveArgs(vm)...)
	for _, n := range vm.NICs {
		id := fmt.Sprintf("net%d", n.Index)
		args = append(args,
			"-netdev", fmt.Sprintf("tap,id=%s,ifname=%s,script=no,downscript=no", id, n.Tap),
			"-device", fmt.Sprintf("%s,netdev=%s,mac=%s,id=nic%d", nicDevices[n.Model], id, n.MAC, n.Index))
	}
	return args, nil
}

// Env is the environment QEMU runs with: TMPDIR puts the throwaway layers of
// read-only disks (snapshot=on, unlinked as soon as opened) in vm.RunDir.
func Env(vm VM) []string { return []string{"TMPDIR=" + vm.RunDir} }

// DriveID is the QEMU id of the drive attached at an EH device key, as
// query-blockstats names it: ide:0:1 → "ide-0-1".
func DriveID(key string) string { return strings.ReplaceAll(key, ":", "-") }

// deviceKey is the EH device key of a DriveID.
func deviceKey(driveID string) string { return strings.ReplaceAll(driveID, "-", ":") }

// deviceID is the id of the guest device holding a drive.
func deviceID(key string) string { return "dev-" + DriveID(key) }

// driveArgs attaches each drive by its key: ide:B:U on the i440fx's own IDE
// buses, ata:0:U on an AHCI controller's ports, scsi:0:U on a virtio-scsi
// controller, block:N as virtio-blk; bootindex from the boot order.
func driveArgs(vm VM) []string {
	boot := vm.Boot
	if len(boot) == 0 {
		if first := firstDisk(vm.Drives); first != "" {
			boot = []string{first}
		}
	}
	var args []string
	controllers := map[string]bool{}
	drives := slices.Clone(vm.Drives)
	slices.SortFunc(drives, func(a, b Drive) int { return ehkeys.CompareDeviceKeys(a.Key, b.Key) })
	for _, d := range drives {
		addr, _ := ehkeys.DeviceAddress(d.Key) // Validate checked it
		opts := []string{"if=none", "id=" + DriveID(d.Key), "file=" + escape(d.Image), "format=raw"}
		switch {
		case d.CDROM:
			opts = append(opts, "readonly=on")
		case d.ReadOnly:
			// QEMU opens the image O_RDONLY and writes a temporary qcow2
			// layer in $TMPDIR: the guest boots a live system from a disk
			// it can never change (and ide-hd refuses readonly=on: "Block
			// node is read-only").
			opts = append(opts, "snapshot=on")
		default:
			opts = append(opts, "discard=unmap") // the guest's TRIM thins the image
		}
		args = append(args, "-drive", strings.Join(opts, ","))

		dev := []string{"", "drive=" + DriveID(d.Key), "id=" + deviceID(d.Key)}
		hd, cd := "ide-hd", "ide-cd"
		switch addr.Kind {
		case "ide":
			dev = append(dev, fmt.Sprintf("bus=ide.%d", addr.Bus), fmt.Sprintf("unit=%d", addr.Unit))
		case "ata":
			if !controllers["ata"] {
				controllers["ata"] = true
				args = append(args, "-device", "ahci,id=ata0")
			}
			dev = append(dev, fmt.Sprintf("bus=ata0.%d", addr.Unit))
		case "scsi":
			if !controllers["scsi"] {
				controllers["scsi"] = true
				args = append(args, "-device", "virtio-scsi-pci,id=scsi0")
			}
			hd, cd = "scsi-hd", "scsi-cd"
			dev = append(dev, "bus=scsi0.0", "channel=0", fmt.Sprintf("scsi-id=%d", addr.Unit), "lun=0")
		case "block":
			hd, cd = "virtio-blk-pci", "virtio-blk-pci" // virtio has no CD: a read-only disk
		}
		dev[0] = hd
		if d.CDROM {
			dev[0] = cd
		}
		if i := slices.Index(boot, d.Key); i >= 0 {
			dev = append(dev, fmt.Sprintf("bootindex=%d", i+1))
		}
		args = append(args, "-device", strings.Join(dev, ","))
	}
	return args
}

// firstDisk is the key of the first non-CD drive in device order, "" = none.
func firstDisk(drives []Drive) string {
	first := ""
	for _, d := range drives {
		if !d.CDROM && (first == "" || ehkeys.CompareDeviceKeys(d.Key, first) < 0) {
			first = d.Key
		}
	}
	return first
}

// escape doubles commas, QEMU's quoting inside an option value.
func escape(s string) string { return strings.ReplaceAll(s, ",", ",,") }
