//! Checks for the system tools the build and the tests need, and installs the missing ones with
//! apt-get when run as root on Debian or Ubuntu; otherwise stops with the exact command to run.

use std::path::Path;

use crate::cmd::{self, Cmd, Error};

/// A group of things a command needs from the system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// cmake, a C and a C++ compiler, and libclang (llama.cpp's build and bindgen).
    NativeBuild,
    /// pkg-config, fontconfig and freetype headers and one font (the benchmark's PNG charts).
    Charts,
    /// Python 3 able to make a virtual environment (the Python client tests).
    PythonVenv,
    /// `unshare` and `ip` (the offline proof in a network namespace).
    Netns,
}

/// Something missing, and the Debian packages that provide it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    /// What is missing, in words.
    pub what: &'static str,
    /// Debian packages that provide it.
    pub packages: &'static [&'static str],
}

/// Checks every need; installs what is missing when possible, else fails with the command to run.
pub fn ensure(needs: &[Need]) -> Result<(), Error> {
    let missing = find_missing(needs);
    if missing.is_empty() {
        return Ok(());
    }
    for m in &missing {
        eprintln!("xtask: missing {}", m.what);
    }
    let packages = package_list(&missing);
    let install = format!("apt-get install -y --no-install-recommends {}", packages.join(" "));
    let has_apt = Cmd::new("apt-get").arg("--version").probe().is_some();
    if !has_apt {
        return Err(Error::Missing(format!(
            "install these with your system's package manager and run again: {}",
            missing.iter().map(|m| m.what).collect::<Vec<_>>().join(", ")
        )));
    }
    if !is_root() {
        return Err(Error::Missing(format!(
            "run this, then run xtask again:\n    sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive {install}"
        )));
    }
    cmd::step(&format!("installing {}", packages.join(" ")));
    Cmd::new("apt-get").arg("update").env("DEBIAN_FRONTEND", "noninteractive").status_ok()?;
    Cmd::new("apt-get")
        .args(["install", "-y", "--no-install-recommends"])
        .args(&packages)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status_ok()?;
    let still = find_missing(needs);
    if still.is_empty() {
        Ok(())
    } else {
        Err(Error::Missing(format!(
            "still missing after apt-get install: {}",
            still.iter().map(|m| m.what).collect::<Vec<_>>().join(", ")
        )))
    }
}

/// Everything missing for these needs.
pub fn find_missing(needs: &[Need]) -> Vec<Missing> {
    let mut out = Vec::new();
    for need in needs {
        match need {
            Need::NativeBuild => {
                if !runs("cmake", &["--version"]) {
                    out.push(Missing { what: "cmake", packages: &["cmake"] });
                }
                if !["cc", "gcc", "clang"].iter().any(|c| runs(c, &["--version"])) {
                    out.push(Missing { what: "a C compiler", packages: &["gcc"] });
                }
                if !["c++", "g++", "clang++"].iter().any(|c| runs(c, &["--version"])) {
                    out.push(Missing { what: "a C++ compiler", packages: &["g++"] });
                }
                if !has_libclang() {
                    out.push(Missing {
                        what: "libclang (bindgen needs it)",
                        packages: &["clang", "libclang-dev"],
                    });
                }
            }
            Need::Charts => {
                if !runs("pkg-config", &["--version"]) {
                    out.push(Missing { what: "pkg-config", packages: &["pkg-config"] });
                }
                if !runs("pkg-config", &["--exists", "fontconfig", "freetype2"]) {
                    out.push(Missing {
                        what: "fontconfig and freetype headers (chart text)",
                        packages: &["libfontconfig1-dev", "libfreetype-dev"],
                    });
                }
                let fonts = Cmd::new("fc-list").probe().unwrap_or_default();
                if fonts.trim().is_empty() {
                    out.push(Missing {
                        what: "a font for chart text",
                        packages: &["fontconfig", "fonts-dejavu-core"],
                    });
                }
            }
            Need::PythonVenv => {
                if !runs("python3", &["--version"]) {
                    out.push(Missing { what: "python3", packages: &["python3", "python3-venv"] });
                } else if !runs("python3", &["-c", "import venv, ensurepip"]) {
                    out.push(Missing {
                        what: "python3's venv module with ensurepip",
                        packages: &["python3-venv"],
                    });
                }
            }
            Need::Netns => {
                if !runs("unshare", &["--version"]) {
                    out.push(Missing { what: "unshare", packages: &["util-linux"] });
                }
                if !runs("ip", &["-V"]) {
                    out.push(Missing { what: "ip", packages: &["iproute2"] });
                }
            }
        }
    }
    out
}

/// The Debian packages for these, without duplicates, in order.
pub fn package_list(missing: &[Missing]) -> Vec<&'static str> {
    let mut packages: Vec<&'static str> = Vec::new();
    for p in missing.iter().flat_map(|m| m.packages.iter().copied()) {
        if !packages.contains(&p) {
            packages.push(p);
        }
    }
    packages
}

fn runs(program: &str, args: &[&str]) -> bool {
    Cmd::new(program).args(args).probe().is_some()
}

fn is_root() -> bool {
    Cmd::new("id").arg("-u").probe().is_some_and(|s| s.trim() == "0")
}

/// Whether bindgen (through clang-sys) will find a libclang shared library: `LIBCLANG_PATH`,
/// `llvm-config --libdir`, the dynamic linker's cache, or the usual LLVM install folders.
fn has_libclang() -> bool {
    if let Some(dir) = std::env::var_os("LIBCLANG_PATH") {
        if dir_has_libclang(Path::new(&dir)) {
            return true;
        }
    }
    if let Some(dir) = Cmd::new("llvm-config").arg("--libdir").probe() {
        if dir_has_libclang(Path::new(dir.trim())) {
            return true;
        }
    }
    for ldconfig in ["ldconfig", "/sbin/ldconfig"] {
        if let Some(list) = Cmd::new(ldconfig).arg("-p").probe() {
            if list.lines().any(|l| l.split_whitespace().next().is_some_and(is_libclang_name)) {
                return true;
            }
        }
    }
    for base in ["/usr/lib", "/usr/local/lib", "/usr/lib64"] {
        let Ok(entries) = std::fs::read_dir(base) else { continue };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if (name.starts_with("llvm") && dir_has_libclang(&entry.path().join("lib")))
                || dir_has_libclang(&entry.path())
                || is_libclang_name(&name)
            {
                return true;
            }
        }
    }
    false
}

fn dir_has_libclang(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries.flatten().any(|e| is_libclang_name(&e.file_name().to_string_lossy()))
    })
}

/// `libclang.so`, `libclang.so.1`, `libclang-14.so.1`, `libclang.dylib`, but not `libclang-cpp`.
pub fn is_libclang_name(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("libclang") else { return false };
    if rest.starts_with("-cpp") || rest.starts_with("cpp") {
        return false;
    }
    let rest = rest
        .strip_prefix('-')
        .map_or(rest, |r| r.trim_start_matches(|c: char| c.is_ascii_digit() || c == '.'));
    rest.starts_with(".so") || rest.starts_with("so") || rest.starts_with(".dylib")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libclang_names() {
        for good in [
            "libclang.so",
            "libclang.so.1",
            "libclang-14.so.1",
            "libclang-14.0.6.so",
            "libclang.dylib",
        ] {
            assert!(is_libclang_name(good), "{good}");
        }
        for bad in ["libclang-cpp.so.14", "libclangAST.a", "libclang_rt.asan.a", "libc.so"] {
            assert!(!is_libclang_name(bad), "{bad}");
        }
    }

    #[test]
    fn packages_are_deduplicated_in_order() {
        let missing = [
            Missing { what: "a", packages: &["cmake", "clang"] },
            Missing { what: "b", packages: &["clang", "libclang-dev"] },
        ];
        assert_eq!(package_list(&missing), ["cmake", "clang", "libclang-dev"]);
    }
}
