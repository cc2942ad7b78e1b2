#!/bin/sh
# Runs after Ignition's last stage (files) succeeded on first boot: removes
# flatcar/first_boot from the boot partition (label BOOT), so GRUB stops
# passing ignition.firstboot. If any Ignition stage failed we never get
# here (emergency target) and the next boot runs Ignition again, as on Flatcar.
set -eu
mnt=/run/flatcar-boot
mkdir -p "$mnt"
i=0
while [ ! -e /dev/disk/by-label/BOOT ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
mount -t ext4 /dev/disk/by-label/BOOT "$mnt"
rm -f "$mnt/flatcar/first_boot"
sync
umount "$mnt"
echo "flatcar-first-boot-done: Ignition succeeded, first-boot flag removed" > /dev/console
