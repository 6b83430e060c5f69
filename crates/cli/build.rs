//! Link-time settings of the shipped binary.

fn main() {
    println!("cargo:rerun-if-env-changed=TAGPILOT_NO_RELR");
    let linux_gnu = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
        && std::env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("gnu");
    // Packed relative relocations (DT_RELR): a position-independent binary keeps one 24-byte
    // `.rela.dyn` entry per pointer in its data; RELR stores them as bitmaps (1.8 MB -> a few
    // KB here) with ASLR unchanged. Needs binutils >= 2.38 to link and glibc >= 2.36 to run
    // (Debian 12): set TAGPILOT_NO_RELR=1 to build for an older system.
    if linux_gnu && std::env::var_os("TAGPILOT_NO_RELR").is_none() {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
