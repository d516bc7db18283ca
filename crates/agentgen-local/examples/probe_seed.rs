use agentgen_core::{ChatBackend, ChatMessage, ChatRequest};
use agentgen_local::{LocalBackend, LocalConfig};
#[tokio::main]
async fn main() {
    let path = agentgen_local::cache::default_model_path();
    let mut c = LocalConfig::new(path);
    c.slots = 1;
    let b = LocalBackend::load(c).unwrap();
    let req = |s: &str| ChatRequest::new(vec![ChatMessage::system(s), ChatMessage::user("Invent a name for a cat.")]).with_temperature(0.8).with_seed(1234).with_max_tokens(12);
    for s in ["Alpha", "You are a helpful assistant.", "Beta", "You are a helpful assistant.", "You are a helpful assistant."] {
        let r = b.complete(req(s)).await.unwrap();
        println!("{s}: {:?} {:?}", r.text(), r.usage);
    }
}
