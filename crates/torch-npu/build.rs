//! Compiles the C++ shim against the torch installed in the interpreter maturin builds for.
//! PyTorch's C++ ABI is not stable across versions, so the torch version is recorded and
//! checked again at import.
use std::env;
use std::path::PathBuf;
use std::process::Command;

fn python() -> String {
    env::var("PYO3_PYTHON")
        .or_else(|_| env::var("PYTHON_SYS_EXECUTABLE"))
        .unwrap_or_else(|_| "python3".into())
}

fn ask_torch(py: &str) -> Vec<String> {
    let script = "import torch, torch.utils.cpp_extension as c\n\
                  print(torch.__version__)\n\
                  print(int(torch._C._GLIBCXX_USE_CXX11_ABI))\n\
                  print(';'.join(c.include_paths()))\n\
                  print(';'.join(c.library_paths()))";
    let out = Command::new(py)
        .args(["-c", script])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {py}: {e}"));
    assert!(
        out.status.success(),
        "{py} cannot import torch (install torch first):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().lines().map(str::to_owned).collect()
}

fn main() {
    let py = python();
    let info = ask_torch(&py);
    let (version, abi, includes, libdirs) = (&info[0], &info[1], &info[2], &info[3]);
    println!("cargo:rustc-env=TORCH_NPU_BUILT_TORCH_VERSION={version}");
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");

    let csrc = PathBuf::from("csrc");
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .std("c++20")
        .define("_GLIBCXX_USE_CXX11_ABI", abi.as_str())
        .flag_if_supported("-Wno-unused-parameter")
        .flag_if_supported("-Wno-missing-field-initializers")
        .flag_if_supported("-Wno-deprecated-declarations")
        .flag("-fvisibility=hidden")
        .opt_level(2)
        .link_lib_modifier("+whole-archive");
    for inc in includes.split(';').filter(|s| !s.is_empty()) {
        build.include(inc);
    }
    // the directory too, so that a new source file triggers a rebuild
    println!("cargo:rerun-if-changed={}", csrc.display());
    for entry in std::fs::read_dir(&csrc).unwrap() {
        let path = entry.unwrap().path();
        println!("cargo:rerun-if-changed={}", path.display());
        if path.extension().is_some_and(|e| e == "cpp") {
            build.file(&path);
        }
    }
    build.compile("torch_npu_shim");

    for dir in libdirs.split(';').filter(|s| !s.is_empty()) {
        println!("cargo:rustc-link-search=native={dir}");
    }
    println!("cargo:rustc-link-lib=dylib=c10");
    println!("cargo:rustc-link-lib=dylib=torch_cpu");
    println!("cargo:rustc-link-lib=dylib=stdc++");
    // torch_npu/_C.so sits beside torch/ in site-packages.
    println!("cargo:rustc-cdylib-link-arg=-Wl,-rpath,$ORIGIN/../torch/lib");
}
