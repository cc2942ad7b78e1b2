#!/bin/bash
# dracut module: what Flatcar's initramfs (bootengine) does around Ignition
# that Debian's 30ignition module does not:
#  - flatcar-fwcfg-config.service hands Ignition the config from fw_cfg key
#    opt/org.flatcar-linux/config (Flatcar's key; upstream Ignition reads
#    opt/com.coreos/config) by copying its bytes unchanged to
#    /usr/lib/ignition/user.ign, which Ignition reads before asking the
#    platform provider;
#  - flatcar-ignition-neednet.service runs DHCP on every link when Ignition
#    needs the network for remote resources (Flatcar's initramfs does the
#    same with networkd), and drops the leases before the switch root;
#  - flatcar-first-boot-done.service removes the first-boot flag file
#    flatcar/first_boot from the boot partition once every Ignition stage
#    succeeded, so GRUB no longer passes ignition.firstboot;
#  - a STAND-IN setfiles: Debian's Ignition relabels for SELinux after its
#    files stage; the test image has no SELinux, so there is nothing to do.
# All run only on first boot: they are required by ignition-complete.target,
# which the ignition generator activates only with ignition.firstboot.

check() {
    return 255
}

depends() {
    echo ignition
}

install() {
    inst_multiple cp cat mkdir mv mount umount rm sync sleep modprobe sha256sum \
        ip dhclient kill awk tr grep wc
    inst_script "$moddir/setfiles-stand-in.sh" /usr/sbin/setfiles
    inst_script "$moddir/flatcar-fwcfg-config.sh" /usr/sbin/flatcar-fwcfg-config
    inst_script "$moddir/flatcar-first-boot-done.sh" /usr/sbin/flatcar-first-boot-done
    inst_script "$moddir/flatcar-ignition-neednet.sh" /usr/sbin/flatcar-ignition-neednet
    inst_script "$moddir/flatcar-dhcp-script.sh" /usr/sbin/flatcar-dhcp-script
    local unit
    for unit in flatcar-fwcfg-config.service flatcar-ignition-neednet.service flatcar-first-boot-done.service; do
        inst_simple "$moddir/$unit" "$systemdsystemunitdir/$unit"
        mkdir -p "$initdir/$systemdsystemunitdir/ignition-complete.target.requires"
        ln_r "$systemdsystemunitdir/$unit" \
            "$systemdsystemunitdir/ignition-complete.target.requires/$unit"
    done
}
