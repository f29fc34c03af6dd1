//! Generates Rust from every `.proto` under the workspace's `proto/`, with the vendored `protoc`
//! so that a fresh clone needs nothing installed by hand.

use std::path::{Path, PathBuf};

#[allow(unsafe_code)] // set_var is unsafe since edition 2024; a build script has one thread.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let mut files = Vec::new();
    collect_protos(&root, &mut files)?;
    files.sort();

    // prost-build finds protoc through PROTOC.
    unsafe { std::env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?) };
    let wkt = protoc_bin_vendored::include_path()?;
    let descriptor = PathBuf::from(std::env::var("OUT_DIR")?).join("logistics_descriptor.bin");

    tonic_prost_build::configure()
        .file_descriptor_set_path(&descriptor)
        .compile_protos(&files, &[root.clone(), wkt])?;

    println!("cargo:rerun-if-changed={}", root.display());
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    Ok(())
}

fn collect_protos(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_protos(&path, out)?;
        } else if path.extension().is_some_and(|ext| ext == "proto") {
            out.push(path);
        }
    }
    Ok(())
}
