//! Live (feature `live`, root, QEMU, network namespaces): the boot proof of
//! the Flatcar-like test image, `tests/boot/boot-proof`. It builds the image
//! from Debian packages (or takes it from the cache,
//! `/var/cache/flatcar-microcloud`), builds the HAProxy and Keepalived
//! system extensions, boots the image under TCG inside a network namespace
//! with an Ignition config passed as Flatcar gets it (`fw_cfg`
//! `opt/org.flatcar-linux/config`), checks every claim over SSH, reboots and
//! checks that Ignition did not run again. The script prints one row per
//! claim and the phase times, and cleans up its QEMU process and namespace
//! also on failure. See `tests/boot/README.md`.

use std::path::Path;
use std::process::Command;

#[test]
fn test_image_boots_runs_ignition_once_and_merges_extensions() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/boot/boot-proof");
    let status = Command::new(&script)
        .status()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        status.success(),
        "boot proof failed ({status}); the serial console is in out/boot-proof/console.log"
    );
}
