//! Adds the directory tokemb-sys linked from (TOKEMB_LIB_DIR or pkg-config's -L) to the run-time search
//! path of this crate's tests and examples, so `cargo test` / `cargo run --example` work against a build
//! tree without LD_LIBRARY_PATH (setting LD_LIBRARY_PATH still works and takes precedence).
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TOKEMB_LIB_DIR");
    if let Ok(dir) = std::env::var("DEP_TOKEMB_LIB_DIR") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
}
