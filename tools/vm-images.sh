#!/bin/sh
# vm-images.sh OUTDIR — builds the two images the VM end-to-end tests boot
# (internal/e2e/vm_test.go), from Debian's archive only, without root, loop
# devices or mounts:
#
#   OUTDIR/disk.img      a raw disk: MBR (syslinux's mbr.bin), one active
#                        FAT partition holding Debian's kernel, a busybox
#                        initramfs and SYSLINUX (installed with mtools)
#   OUTDIR/installer.iso an El Torito ISO booting the same kernel and
#                        initramfs with ISOLINUX
#
# The initramfs's init prints a banner ("hearth-e2e disk" or "hearth-e2e
# installer", from the e2e= kernel argument) on the VGA console (tty0) and
# the serial port (ttyS0), asks DHCP on eth0 and prints "address: A.B.C.D"
# on both, and powers off at once when the ACPI power button is pressed
# (busybox acpid). The kernel keeps VGA text mode (vga=normal nomodeset) so
# the tests read the screen as 80x25 cells.
#
# Packages: busybox-static, syslinux, syslinux-common, isolinux, mtools,
# dosfstools, xorriso, fdisk; apt-get download fetches the kernel package.
set -eu

out=${1:?usage: vm-images.sh OUTDIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# apt-get download drops privileges to _apt, which must reach the directory.
chmod 755 "$work"
cd "$work"

kpkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-/ { print $2; exit }')
[ -n "$kpkg" ] || { echo "vm-images.sh: no linux-image package behind linux-image-amd64" >&2; exit 1; }
apt-get download -q -o APT::Sandbox::User="$(id -un)" "$kpkg"
dpkg-deb -x "$kpkg"_*.deb kernel
kver=$(ls kernel/lib/modules)
cp "kernel/boot/vmlinuz-$kver" vmlinuz

# The initramfs: busybox and the modules of the NIC models Hearth offers
# (e1000, rtl8139, virtio), the ACPI button and evdev for acpid, in load order.
mkdir -p root/bin root/dev root/proc root/sys root/etc/acpi/PWRF root/lib/modules
cp /bin/busybox root/bin/busybox
modules="e1000 mii 8139too failover net_failover virtio virtio_ring virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_net button evdev"
for m in $modules; do
	f=$(find "kernel/lib/modules/$kver" -name "$m.ko")
	[ -n "$f" ] || { echo "vm-images.sh: module $m not in $kpkg" >&2; exit 1; }
	cp "$f" root/lib/modules/
done
echo "$modules" >root/lib/modules/order

cat >root/init <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
say() { echo "$*" >/dev/tty0; echo "$*" >/dev/ttyS0; }
role=$(sed -n 's/.*\be2e=\([a-z]*\).*/\1/p' /proc/cmdline)
say "hearth-e2e ${role:-unknown}"
for m in $(cat /lib/modules/order); do insmod /lib/modules/$m.ko 2>/dev/null; done
# acpid runs ./PWRF/00000080 (relative to -c) for the power button; its
# default log file's directory does not exist here.
acpid -c /etc/acpi -l /dev/null
ip link set lo up
ip link set eth0 up 2>/dev/null && udhcpc -b -i eth0 -s /etc/udhcpc.script -t 30 -T 2 -A 2 -q >/dev/null 2>&1
while :; do sleep 3600; done
EOF
cat >root/etc/udhcpc.script <<'EOF'
#!/bin/sh
case $1 in
bound|renew)
	ip addr flush dev "$interface"
	ip addr add "$ip/${mask:-24}" dev "$interface"
	[ -z "${router:-}" ] || ip route add default via "${router%% *}" dev "$interface"
	echo "address: $ip" >/dev/tty0
	echo "address: $ip" >/dev/ttyS0
	;;
esac
EOF
cat >root/etc/acpi/PWRF/00000080 <<'EOF'
#!/bin/sh
echo "power button" >/dev/ttyS0
poweroff -f
EOF
chmod 755 root/init root/etc/udhcpc.script root/etc/acpi/PWRF/00000080
(cd root && find . | busybox cpio -o -H newc 2>/dev/null) | gzip -9n >initrd.gz

append="console=tty0 console=ttyS0 vga=normal nomodeset nokaslr quiet"

# The disk: a FAT partition at 1 MiB, written with mtools at its offset.
cat >syslinux.cfg <<EOF
DEFAULT e2e
PROMPT 0
TIMEOUT 0
LABEL e2e
  KERNEL /vmlinuz
  INITRD /initrd.gz
  APPEND $append e2e=disk
EOF
rm -f disk.img
truncate -s 32M disk.img
echo 'start=2048, type=c, bootable' | sfdisk -q disk.img
mkfs.fat -F 16 --offset 2048 -n HEARTHE2E disk.img $(((32 * 1024 - 1024))) >/dev/null
mcopy -i disk.img@@1M vmlinuz initrd.gz syslinux.cfg ::/
syslinux --install --offset $((2048 * 512)) disk.img
dd if=/usr/lib/syslinux/mbr/mbr.bin of=disk.img bs=440 count=1 conv=notrunc status=none

# The installer ISO.
mkdir -p iso/isolinux
cp /usr/lib/ISOLINUX/isolinux.bin /usr/lib/syslinux/modules/bios/ldlinux.c32 iso/isolinux/
cp vmlinuz initrd.gz iso/
sed "s/e2e=disk/e2e=installer/" syslinux.cfg >iso/isolinux/isolinux.cfg
xorriso -as mkisofs -quiet -o installer.iso -V HEARTH_E2E -b isolinux/isolinux.bin -c isolinux/boot.cat \
	-no-emul-boot -boot-load-size 4 -boot-info-table iso

mv disk.img installer.iso "$out/"
echo "$kpkg" >"$out/kernel"
