package hostpath

import "testing"

func TestRedact(t *testing.T) {
	Register("/data/hearth")
	for in, want := range map[string]string{
		"boot drive /var/lib/hearth/drives/0c0ffee0-1111-2222-3333-444455556666.img holds no ext4 filesystem": "boot drive …/0c0ffee0-1111-2222-3333-444455556666.img holds no ext4 filesystem",
		"truncate /srv/data/drives/x.img: file too large":                                                     "truncate …/x.img: file too large",
		"open /tmp/TestX123/001/run/abc/rootfs/sbin/init: permission denied":                                  "open …/init: permission denied",
		"POST /servers/abc/set refused":                                                                       "POST /servers/abc/set refused",
		"disk /dev/sdb is read-only":                                                                          "disk /dev/sdb is read-only",
		"size 16T: 1/2 of it":                                                                                 "size 16T: 1/2 of it",
		"no such page /nothing/here":                                                                          "no such page /nothing/here",
		"create /data/hearth/drives/d.img: no space":                                                          "create …/d.img: no space",
		"mount /run/hearth/a on /mnt/x/y: busy":                                                               "mount …/a on …/y: busy",
		"no paths here":                                                                                       "no paths here",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}
