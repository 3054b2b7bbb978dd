#!/bin/sh
# debian-rootfs.sh OUT.tar — a minimal Debian 12 root filesystem as a
# tarball for `hearth image import`, built with debootstrap from Debian's
# archive: systemd as init, systemd-networkd asking DHCP on eth0, root's
# password "hearth" (for the tests that log in on the console). The tests
# boot it as a real server; nothing of it is committed.
set -eu
out=$1
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
[ -s "$out" ] && exit 0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
debootstrap --variant=minbase --include=systemd-sysv,iproute2 bookworm "$work/root" "$mirror" >"$work/log" 2>&1 ||
	{ tail -20 "$work/log" >&2; exit 1; }
root=$work/root
echo 'root:hearth' | chroot "$root" chpasswd
mkdir -p "$root/etc/systemd/network"
cat >"$root/etc/systemd/network/80-eth.network" <<NET
[Match]
Name=eth*

[Network]
DHCP=ipv4
NET
chroot "$root" systemctl enable systemd-networkd.service >/dev/null 2>&1
rm -f "$root/etc/hostname"
chroot "$root" apt-get clean
rm -rf "$root/var/lib/apt/lists/"* "$root/var/cache/apt/"*.bin "$root/usr/share/doc" "$root/usr/share/man" "$root/usr/share/locale"
mkdir -p "$(dirname "$out")"
tar -C "$root" --numeric-owner -cf "$out.tmp" . && mv "$out.tmp" "$out"
