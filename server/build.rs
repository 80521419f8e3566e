//! Rebuilds the server when cargo-leptos rewrites the site, so a release binary always
//! embeds the wasm, js and css it was built with.
fn main() {
    println!("cargo:rerun-if-changed=../target/site");
    println!("cargo:rerun-if-changed=build.rs");
}
