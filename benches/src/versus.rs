//! (h) `agentgen serve` against another OpenAI-compatible server (llama-server, Ollama…) on the
//! same machine, round by round in alternating order: each round runs the same concurrent
//! clients against one server and then the other (the order flips every round), so the
//! machine's drift in speed falls on both sides and the per-round ratio stays meaningful on a
//! noisy machine. Both servers get the very same prompts in a round, so a greedy model
//! generates the same tokens on both and the ratio compares like with like.

use std::sync::Arc;

use agentgen_core::BackendError;
use agentgen_groq::OpenAiBackend;
use serde::{Deserialize, Serialize};

use crate::measure::Sample;
use crate::stats::Stat;
use crate::workloads::{client_round, nonce, stat, Plan};

/// One concurrency level, both servers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VersusRow {
    /// Clients sending at once, each `requests_per_client` streamed requests in a row.
    pub clients: usize,
    /// Measured rounds (each: both servers once).
    pub rounds: usize,
    /// agentgen serve: generated tokens per second over all clients, per round.
    pub ours_tokens_per_s: Stat,
    /// The other server, the same.
    pub theirs_tokens_per_s: Stat,
    /// Ours / theirs, round by round.
    pub ratio: Stat,
    /// agentgen serve: decode speed of each stream after its first token (client side).
    pub ours_stream_decode_tokens_per_s: Stat,
    /// The other server, the same.
    pub theirs_stream_decode_tokens_per_s: Stat,
}

/// (h) All levels against one other server, or why it did not run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VersusSeries {
    /// The other server's base URL.
    pub endpoint: String,
    /// The model it served.
    pub model: String,
    /// Why it has no rows (or fewer than asked).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// One row per concurrency level.
    pub rows: Vec<VersusRow>,
}

/// One concurrency level: a warm-up round, then `plan.versus_rounds` measured ones.
pub async fn level(
    ours: &Arc<OpenAiBackend>,
    theirs: &Arc<OpenAiBackend>,
    plan: &Plan,
    clients: usize,
    mut tick: impl FnMut(),
) -> Result<VersusRow, BackendError> {
    let mut o_tps = Vec::new();
    let mut t_tps = Vec::new();
    let mut ratio = Vec::new();
    let (mut o_decode, mut t_decode) = (Vec::new(), Vec::new());
    for round in 0..plan.warmup + plan.versus_rounds {
        let tag = format!("h-{clients}-{round}-{}", nonce());
        let (o, t) = if round % 2 == 0 {
            let o = client_round(ours, plan, clients, &tag).await?;
            (o, client_round(theirs, plan, clients, &tag).await?)
        } else {
            let t = client_round(theirs, plan, clients, &tag).await?;
            (client_round(ours, plan, clients, &tag).await?, t)
        };
        tick();
        if round < plan.warmup {
            continue;
        }
        let (o_rate, t_rate) = (o.tokens_per_s(), t.tokens_per_s());
        o_tps.push(o_rate);
        t_tps.push(t_rate);
        if t_rate > 0.0 {
            ratio.push(o_rate / t_rate);
        }
        o_decode.extend(decode_rates(&o.samples));
        t_decode.extend(decode_rates(&t.samples));
    }
    Ok(VersusRow {
        clients,
        rounds: plan.versus_rounds,
        ours_tokens_per_s: stat(&o_tps, "agentgen serve tok/s")?,
        theirs_tokens_per_s: stat(&t_tps, "compared server tok/s")?,
        ratio: stat(&ratio, "ours/theirs")?,
        ours_stream_decode_tokens_per_s: stat(&o_decode, "agentgen serve decode")?,
        theirs_stream_decode_tokens_per_s: stat(&t_decode, "compared server decode")?,
    })
}

fn decode_rates(samples: &[Sample]) -> impl Iterator<Item = f64> + '_ {
    samples.iter().map(|s| s.decode_tokens_per_s).filter(|r| *r > 0.0)
}

#[cfg(test)]
mod tests {
    use agentgen_core::testing::{Reply, ScriptedBackend};
    use agentgen_core::ChatBackend;

    use super::*;
    use crate::workloads::InProcessServer;

    /// A server over a scripted backend that answers every request with a few words.
    async fn server() -> (InProcessServer, Arc<ScriptedBackend>) {
        let backend =
            Arc::new(ScriptedBackend::new().with_responder(|_| Reply::text("1, 2, 3, 4, 5, 6")));
        let model = backend.info().model.clone();
        let server = InProcessServer::start(backend.clone(), 4).await.unwrap();
        assert!(server.client(&model).is_ok());
        (server, backend)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn both_servers_get_the_same_prompts_round_by_round() {
        let (ours, ours_backend) = server().await;
        let (theirs, theirs_backend) = server().await;
        let model = ours_backend.info().model.clone();
        let plan = Plan::new(true);
        let row = level(
            &Arc::new(ours.client(&model).unwrap()),
            &Arc::new(theirs.client(&model).unwrap()),
            &plan,
            2,
            || {},
        )
        .await
        .unwrap();
        assert_eq!(row.clients, 2);
        assert_eq!(row.rounds, plan.versus_rounds);
        assert_eq!(row.ratio.n, plan.versus_rounds);
        assert!(row.ours_tokens_per_s.median > 0.0 && row.theirs_tokens_per_s.median > 0.0);

        let prompts = |b: &ScriptedBackend| {
            let mut p: Vec<String> =
                b.requests().iter().map(|r| serde_json::to_string(&r.messages).unwrap()).collect();
            p.sort();
            p
        };
        let (o, t) = (prompts(&ours_backend), prompts(&theirs_backend));
        let expected = (plan.warmup + plan.versus_rounds) * 2 * plan.requests_per_client;
        assert_eq!(o.len(), expected);
        assert_eq!(o, t, "both servers must see the very same prompts");
        let mut distinct = o.clone();
        distinct.dedup();
        assert_eq!(distinct.len(), o.len(), "every prompt of a server must be new to its cache");
        ours.stop().await.unwrap();
        theirs.stop().await.unwrap();
    }
}
