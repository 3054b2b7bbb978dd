package qemu

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"hearth/vmm/guest"
)

func baseVM() VM {
	return VM{Name: "srv1", SMP: 2, Mem: 256, RunDir: "/data/run/srv1"}
}

// option returns the value after each occurrence of flag in args.
func option(args []string, flag string) []string {
	var vals []string
	for i, a := range args {
		if a == flag && i+1 < len(args) {
			vals = append(vals, args[i+1])
		}
	}
	return vals
}

func TestCommandMachine(t *testing.T) {
	for _, tc := range []struct {
		name string
		kvm  bool
		want [][2]string // flag, value
		not  []string
	}{
		{"tcg", false, [][2]string{{"-accel", "tcg,tb-size=64"}, {"-machine", "pc"}, {"-smp", "2"}, {"-m", "256"},
			{"-name", "guest=srv1"}, {"-vga", "std"}, {"-display", "none"},
			{"-vnc", "unix:/data/run/srv1/vnc.sock"}, {"-qmp", "unix:/data/run/srv1/qmp.sock,server=on,wait=off"},
			{"-chardev", "stdio,id=serial0,signal=off"}, {"-serial", "chardev:serial0"}}, []string{"-cpu"}},
		{"kvm", true, [][2]string{{"-accel", "kvm"}, {"-cpu", "host"}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vm := baseVM()
			vm.KVM = tc.kvm
			args, err := Command(vm)
			if err != nil {
				t.Fatal(err)
			}
			if args[0] != Binary || !slices.Contains(args, "-nodefaults") || !slices.Contains(args, "-no-user-config") {
				t.Errorf("argv %q lacks %s -nodefaults -no-user-config", args, Binary)
			}
			for _, w := range tc.want {
				if !slices.Contains(option(args, w[0]), w[1]) {
					t.Errorf("%s %s missing: %q", w[0], w[1], option(args, w[0]))
				}
			}
			for _, flag := range tc.not {
				if slices.Contains(args, flag) {
					t.Errorf("unexpected %s in %q", flag, args)
				}
			}
			if got := Env(vm); !slices.Equal(got, []string{"TMPDIR=/data/run/srv1"}) {
				t.Errorf("Env = %q", got)
			}
		})
	}
}

func TestCommandDrives(t *testing.T) {
	const img = "/d/img"
	for _, tc := range []struct {
		name    string
		drive   Drive
		boot    []string
		drives  []string // -drive values
		devices []string // -device values (without the usb tablet)
	}{
		{"ide disk", Drive{Key: "ide:0:0", Image: img}, nil,
			[]string{"if=none,id=ide-0-0,file=/d/img,format=raw,discard=unmap"},
			[]string{"ide-hd,drive=ide-0-0,id=dev-ide-0-0,bus=ide.0,unit=0,bootindex=1"}},
		{"ide cdrom on the second bus", Drive{Key: "ide:1:1", Image: img, CDROM: true}, nil,
			[]string{"if=none,id=ide-1-1,file=/d/img,format=raw,readonly=on"},
			[]string{"ide-cd,drive=ide-1-1,id=dev-ide-1-1,bus=ide.1,unit=1"}},
		{"ide read-only disk", Drive{Key: "ide:0:1", Image: img, ReadOnly: true}, nil,
			[]string{"if=none,id=ide-0-1,file=/d/img,format=raw,snapshot=on"},
			[]string{"ide-hd,drive=ide-0-1,id=dev-ide-0-1,bus=ide.0,unit=1,bootindex=1"}},
		{"ata disk", Drive{Key: "ata:0:5", Image: img}, nil,
			[]string{"if=none,id=ata-0-5,file=/d/img,format=raw,discard=unmap"},
			[]string{"ahci,id=ata0", "ide-hd,drive=ata-0-5,id=dev-ata-0-5,bus=ata0.5,bootindex=1"}},
		{"scsi disk", Drive{Key: "scsi:0:3", Image: img}, nil,
			[]string{"if=none,id=scsi-0-3,file=/d/img,format=raw,discard=unmap"},
			[]string{"virtio-scsi-pci,id=scsi0", "scsi-hd,drive=scsi-0-3,id=dev-scsi-0-3,bus=scsi0.0,channel=0,scsi-id=3,lun=0,bootindex=1"}},
		{"scsi cdrom booted", Drive{Key: "scsi:0:0", Image: img, CDROM: true}, []string{"scsi:0:0"},
			[]string{"if=none,id=scsi-0-0,file=/d/img,format=raw,readonly=on"},
			[]string{"virtio-scsi-pci,id=scsi0", "scsi-cd,drive=scsi-0-0,id=dev-scsi-0-0,bus=scsi0.0,channel=0,scsi-id=0,lun=0,bootindex=1"}},
		{"block disk", Drive{Key: "block:7", Image: img}, nil,
			[]string{"if=none,id=block-7,file=/d/img,format=raw,discard=unmap"},
			[]string{"virtio-blk-pci,drive=block-7,id=dev-block-7,bootindex=1"}},
		{"block cdrom is a read-only disk", Drive{Key: "block:0", Image: img, CDROM: true}, nil,
			[]string{"if=none,id=block-0,file=/d/img,format=raw,readonly=on"},
			[]string{"virtio-blk-pci,drive=block-0,id=dev-block-0"}},
		{"comma in a path", Drive{Key: "ide:0:0", Image: "/d/a,b"}, nil,
			[]string{"if=none,id=ide-0-0,file=/d/a,,b,format=raw,discard=unmap"},
			[]string{"ide-hd,drive=ide-0-0,id=dev-ide-0-0,bus=ide.0,unit=0,bootindex=1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vm := baseVM()
			vm.Drives, vm.Boot = []Drive{tc.drive}, tc.boot
			args, err := Command(vm)
			if err != nil {
				t.Fatal(err)
			}
			if got := option(args, "-drive"); !slices.Equal(got, tc.drives) {
				t.Errorf("-drive %q\nwant %q", got, tc.drives)
			}
			devices := slices.DeleteFunc(option(args, "-device"), func(d string) bool { return d == "usb-tablet" })
			if !slices.Equal(devices, tc.devices) {
				t.Errorf("-device %q\nwant %q", devices, tc.devices)
			}
		})
	}
}

func TestCommandBootOrder(t *testing.T) {
	vm := baseVM()
	vm.Drives = []Drive{
		{Key: "block:0", Image: "/b"},
		{Key: "scsi:0:1", Image: "/s"},
		{Key: "ide:0:1", Image: "/cd", CDROM: true},
		{Key: "ide:1:0", Image: "/i"},
	}
	bootindex := func(args []string) map[string]string {
		got := map[string]string{}
		for _, d := range option(args, "-device") {
			if _, idx, ok := strings.Cut(d, ",bootindex="); ok {
				got[strings.SplitN(strings.SplitN(d, "drive=", 2)[1], ",", 2)[0]] = idx
			}
		}
		return got
	}
	args, err := Command(vm)
	if err != nil {
		t.Fatal(err)
	}
	if got := bootindex(args); len(got) != 1 || got["ide-1-0"] != "1" {
		t.Errorf("without boot: bootindex %v, want only the first disk ide:1:0 = 1", got)
	}
	vm.Boot = []string{"ide:0:1", "block:0"}
	if args, err = Command(vm); err != nil {
		t.Fatal(err)
	}
	if got := bootindex(args); len(got) != 2 || got["ide-0-1"] != "1" || got["block-0"] != "2" {
		t.Errorf("boot ide:0:1 block:0: bootindex %v", got)
	}
	// Device order on the command line is the EH order, whatever the input's.
	var order []string
	for _, d := range option(args, "-drive") {
		order = append(order, strings.SplitN(strings.TrimPrefix(d, "if=none,id="), ",", 2)[0])
	}
	if want := []string{"ide-0-1", "ide-1-0", "scsi-0-1", "block-0"}; !slices.Equal(order, want) {
		t.Errorf("drive order %q, want %q", order, want)
	}
}

func TestCommandNICs(t *testing.T) {
	for _, tc := range []struct{ model, device string }{
		{"e1000", "e1000"}, {"rtl8139", "rtl8139"}, {"virtio", "virtio-net-pci"},
	} {
		t.Run(tc.model, func(t *testing.T) {
			vm := baseVM()
			vm.NICs = []NIC{{Index: 1, Model: tc.model, MAC: "02:00:00:00:00:01", Tap: "tap1"}}
			args, err := Command(vm)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := option(args, "-netdev"), []string{"tap,id=net1,ifname=tap1,script=no,downscript=no"}; !slices.Equal(got, want) {
				t.Errorf("-netdev %q, want %q", got, want)
			}
			if want := tc.device + ",netdev=net1,mac=02:00:00:00:00:01,id=nic1"; !slices.Contains(option(args, "-device"), want) {
				t.Errorf("-device %q lacks %s", option(args, "-device"), want)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	nic := NIC{Index: 0, Model: "e1000", MAC: "02:00:00:00:00:01", Tap: "tap0"}
	for _, tc := range []struct {
		name   string
		change func(*VM)
		key    string // the error must name it
	}{
		{"name", func(v *VM) { v.Name = "a b" }, "name"},
		{"smp zero", func(v *VM) { v.SMP = 0 }, "smp"},
		{"smp too many", func(v *VM) { v.SMP = MaxSMP + 1 }, "smp 256"},
		{"mem", func(v *VM) { v.Mem = 0 }, "mem"},
		{"run dir", func(v *VM) { v.RunDir = "run" }, "run directory"},
		{"device key", func(v *VM) { v.Drives = []Drive{{Key: "ide:2:0", Image: "/i"}} }, "key ide:2:0"},
		{"not a device", func(v *VM) { v.Drives = []Drive{{Key: "nic:0", Image: "/i"}} }, "key nic:0"},
		{"twice", func(v *VM) { v.Drives = []Drive{{Key: "block:1", Image: "/i"}, {Key: "block:1", Image: "/j"}} }, "key block:1"},
		{"relative image", func(v *VM) { v.Drives = []Drive{{Key: "scsi:0:0", Image: "i"}} }, "key scsi:0:0"},
		{"boot detached", func(v *VM) { v.Boot = []string{"ide:0:0"} }, "key boot: ide:0:0"},
		{"nic model", func(v *VM) { n := nic; n.Model = "ne2k_pci"; v.NICs = []NIC{n} }, "key nic:0:model"},
		{"nic mac", func(v *VM) { n := nic; n.MAC = "02:00"; v.NICs = []NIC{n} }, "key nic:0:mac"},
		{"nic index", func(v *VM) { n := nic; n.Index = 10; v.NICs = []NIC{n} }, "nic:10"},
		{"nic twice", func(v *VM) { v.NICs = []NIC{nic, nic} }, "nic:0"},
		{"nic tap", func(v *VM) { n := nic; n.Tap = "tap,script=/x"; v.NICs = []NIC{n} }, "nic:0: tap"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vm := baseVM()
			tc.change(&vm)
			args, err := Command(vm)
			if !errors.Is(err, guest.ErrInvalid) || !strings.Contains(err.Error(), tc.key) {
				t.Fatalf("Command = %q, %v; want guest.ErrInvalid naming %q", args, err, tc.key)
			}
		})
	}
	if err := baseVM().Validate(); err != nil {
		t.Errorf("a VM without drives or NICs: %v", err)
	}
}

func TestDriveIDRoundTrip(t *testing.T) {
	for _, key := range []string{"ide:0:1", "ata:0:5", "scsi:0:7", "block:3"} {
		if got := deviceKey(DriveID(key)); got != key {
			t.Errorf("deviceKey(DriveID(%s)) = %s", key, got)
		}
	}
}
