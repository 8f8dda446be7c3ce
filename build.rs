//! Generates Rust code for etcd's v3 API (and our raft entry format) from
//! `proto/`, with a pure-Rust protobuf compiler so no `protoc` is needed.
//! PROTOC is deliberately not set: raft's own build script brings its own.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "etcdserverpb/rpc.proto",
        "v3lockpb/v3lock.proto",
        "v3electionpb/v3election.proto",
        "rsetcd/raft_internal.proto",
        "rsetcd/peer.proto",
    ];
    println!("cargo:rerun-if-changed=proto");
    // `etcd --version` prints the commit it was built from, when known.
    if let Ok(out) = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
    {
        if out.status.success() {
            let sha = String::from_utf8_lossy(&out.stdout).trim().to_string();
            println!("cargo:rustc-env=RSETCD_GIT_SHA={sha}");
        }
    }
    let fds = protox::compile(protos, ["proto"])?;
    // The same descriptors at run time, for the JSON gateway's mapping.
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    let mut compiler = protox::Compiler::new(["proto"])?;
    compiler.include_imports(true).open_files(protos)?;
    std::fs::write(
        out.join("rsetcd_descriptors.bin"),
        compiler.encode_file_descriptor_set(),
    )?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    Ok(())
}
