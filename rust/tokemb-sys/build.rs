//! Link flags for libtokemb.
//!
//! 1. `TOKEMB_LIB_DIR=<dir>`: link `<dir>/libtokemb.so` (a CMake build tree, e.g. /work/main/build);
//!    the directory is also passed on to dependents (`DEP_TOKEMB_LIB_DIR`) so the `tokemb` crate can
//!    add it to the run-time search path of its tests and examples.
//! 2. otherwise the `pkg-config` command: `pkg-config --libs tokemb` (honours PKG_CONFIG_PATH).
//! No crates.io dependency: the flags are parsed by hand (-L, -l, and other linker arguments).
use std::env;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=TOKEMB_LIB_DIR");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_LIBDIR");
    println!("cargo:rerun-if-changed=build.rs");
    if let Ok(dir) = env::var("TOKEMB_LIB_DIR") {
        if !dir.is_empty() {
            println!("cargo:rustc-link-search=native={dir}");
            println!("cargo:rustc-link-lib=dylib=tokemb");
            println!("cargo:lib_dir={dir}");
            return;
        }
    }
    let out = Command::new("pkg-config").args(["--libs", "tokemb"]).output();
    let out = match out {
        Ok(o) if o.status.success() => o,
        Ok(o) => panic!(
            "tokemb-sys: `pkg-config --libs tokemb` failed: {}\nInstall libtokemb (cmake --install), add its \
             lib/pkgconfig to PKG_CONFIG_PATH, or set TOKEMB_LIB_DIR to a build directory holding libtokemb.so.",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => panic!("tokemb-sys: cannot run pkg-config ({e}); set TOKEMB_LIB_DIR to the directory of libtokemb.so"),
    };
    let flags = String::from_utf8_lossy(&out.stdout).to_string();
    for f in flags.split_whitespace() {
        if let Some(d) = f.strip_prefix("-L") {
            println!("cargo:rustc-link-search=native={d}");
            println!("cargo:lib_dir={d}");
        } else if let Some(l) = f.strip_prefix("-l") {
            println!("cargo:rustc-link-lib={l}");
        } else {
            println!("cargo:rustc-link-arg={f}");
        }
    }
}
