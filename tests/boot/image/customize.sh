#!/bin/sh
# customize.sh ROOTFS KVER_FILE — run by scripts/build-test-image as an
# mmdebstrap customize hook (ROOTFS has /proc, /sys, /dev mounted), after the
# files of tests/boot/image/rootfs and the dracut module were copied in.
set -eu

# Essential hook (before the kernel and dracut are installed): divert
# dracut's kernel hook to a no-op, so installing the packages does not
# build an initramfs that would be thrown away; the real one is built below,
# once, with the final configuration and modules.
hook=/etc/kernel/postinst.d/dracut
if [ "$1" = --hold-initramfs ]; then
    chroot "$2" dpkg-divert --quiet --local --rename --divert "$hook.held" --add "$hook"
    mkdir -p "$2/etc/kernel/postinst.d"
    printf '#!/bin/sh\nexit 0\n' > "$2$hook"
    chmod +x "$2$hook"
    # The postgres image's user is uid/gid 70 (the generated unit chowns
    # the data directory to 70:70); Debian's postgresql-common reuses an
    # existing postgres user, so it is created here, before the packages.
    grep -q '^postgres:' "$2/etc/group" || echo 'postgres:x:70:' >> "$2/etc/group"
    grep -q '^postgres:' "$2/etc/passwd" ||
        echo 'postgres:x:70:70:PostgreSQL administrator:/var/lib/postgresql:/bin/bash' >> "$2/etc/passwd"
    exit 0
fi

root=$1
kver_file=$2
in_root() { chroot "$root" "$@"; }

kver=$(ls "$root/lib/modules" | sort -V | tail -1)
echo "$kver" > "$kver_file.tmp"

# Kernel modules a VM never loads (sound, GPUs, wireless, media, physical
# NICs other than Intel's, exotic file systems): smaller root and initramfs.
mods=$root/lib/modules/$kver/kernel
for d in sound drivers/gpu drivers/media drivers/net/wireless drivers/infiniband \
         drivers/staging drivers/bluetooth drivers/isdn drivers/iio drivers/mtd \
         drivers/thunderbolt drivers/hwmon drivers/nfc drivers/usb/gadget \
         drivers/net/can drivers/atm drivers/comedi \
         net/bluetooth net/wireless net/mac80211 net/nfc net/can \
         fs/ocfs2 fs/gfs2 fs/ceph fs/smb fs/cifs fs/ntfs3 fs/nilfs2 fs/jfs fs/reiserfs fs/f2fs; do
    rm -rf "${mods:?}/$d"
done
# NICs: the generated domains use virtio; Intel's e1000/e1000e (QEMU's
# defaults) stay, other physical, USB and WWAN NICs go.
for d in "$mods"/drivers/net/ethernet/*; do
    [ "$(basename "$d")" = intel ] || rm -rf "$d"
done
for d in "$mods"/drivers/net/ethernet/intel/*; do
    case $(basename "$d") in e1000|e1000e) ;; *) rm -rf "$d" ;; esac
done
rm -rf "$mods/drivers/net/usb" "$mods/drivers/net/wwan" "$mods/drivers/net/ieee802154" \
       "$mods/drivers/net/hamradio" "$mods/drivers/net/fddi" "$mods/drivers/net/arcnet" \
       "$mods/drivers/net/plip" "$mods/drivers/net/slip" "$mods/drivers/net/appletalk"
in_root depmod "$kver"

# Flatcar's core user (uid/gid 500) and the groups Flatcar has.
in_root groupadd -g 500 core
in_root groupadd -r docker
in_root groupadd -r wheel
in_root useradd -u 500 -g core -G sudo,wheel,docker,systemd-journal,adm -m -s /bin/bash -c "CoreOS Admin" core
in_root passwd -l core >/dev/null
chmod 0440 "$root/etc/sudoers.d/core"

# Services: networkd, resolved, sysext (+ reload), sshd, the boot report.
# Off: timers and services a short-lived test VM does not need.
in_root systemctl enable systemd-networkd.service systemd-resolved.service \
    systemd-sysext.service ensure-sysext.service ssh.service flatcar-boot-report.service
in_root systemctl mask apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer \
    e2scrub_all.timer e2scrub_reap.service fstrim.timer getty@tty1.service \
    systemd-networkd-wait-online.service >/dev/null 2>&1 || true
# Generators a Flatcar VM has no use for (no SysV scripts, no encrypted,
# integrity or verity volumes, no hibernation, no GPT auto-mounts, no
# rc.local): systemd runs every generator at boot and at every daemon
# reload (ensure-sysext reloads once), each an exec that links
# libsystemd-shared, ~1 s of CPU apiece under TCG. Masked by a /dev/null
# link in /etc, as systemd documents.
mkdir -p "$root/etc/systemd/system-generators"
for g in systemd-sysv-generator systemd-gpt-auto-generator systemd-cryptsetup-generator \
    systemd-integritysetup-generator systemd-veritysetup-generator \
    systemd-hibernate-resume-generator systemd-rc-local-generator systemd-run-generator \
    systemd-system-update-generator systemd-debug-generator; do
  ln -sf /dev/null "$root/etc/systemd/system-generators/$g"
done
# Present but off, as on Flatcar (an Ignition config enables them).
in_root systemctl disable nfs-server.service rpcbind.service rpcbind.socket nfs-blkmap.service >/dev/null 2>&1 || true
# The stand-ins' daemons run only under the docker stand-in (as the
# containers of the generated units): Debian's own units off, no default
# PostgreSQL cluster (Flatcar has neither).
in_root systemctl disable named.service named-resolvconf.service postgresql.service >/dev/null 2>&1 || true
# iSCSI off until a config enables iscsid.service (as on Flatcar).
in_root systemctl disable iscsid.socket open-iscsi.service >/dev/null 2>&1 || true
if [ -d "$root/etc/postgresql/15/main" ]; then in_root pg_dropcluster 15 main; fi
[ "$(in_root id -u postgres)" = 70 ] || { echo "postgres is not uid 70" >&2; exit 1; }

# First boot is first boot: no SSH host keys (generated per VM), no
# hostname; /etc/machine-id is set to "uninitialized" by build-test-image
# after mmdebstrap's cleanup (which would empty it after this hook).
rm -f "$root/var/lib/dbus/machine-id" "$root"/etc/ssh/ssh_host_* "$root/etc/hostname"
# Flatcar's os-release carries SYSEXT_LEVEL (sysext images may match on it).
grep -q '^SYSEXT_LEVEL=' "$root/usr/lib/os-release" || echo 'SYSEXT_LEVEL=1.0' >> "$root/usr/lib/os-release"

# Put dracut's kernel hook back.
rm -f "$root$hook"
in_root dpkg-divert --quiet --local --rename --remove "$hook"

# The initramfs: Debian's Ignition module plus the Flatcar glue.
in_root dracut --quiet --force --kver "$kver" "/boot/initrd.img-$kver"
mv "$kver_file.tmp" "$kver_file"
