//! `sheepdog-emulators`: the OpenAI, Anthropic and Gemini emulators on free
//! loopback ports, for tests written outside Rust (the Python SDK tests).
//! Prints one JSON line with each emulator's base URL, then serves until
//! its standard input closes (the test that started it ends) or it is
//! killed.

use sheepdog_emulators::{Emulator, Wire};
use tokio::io::AsyncReadExt;

// The URLs are this program's output.
#[allow(clippy::print_stdout)]
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let openai = Emulator::start(Wire::OpenAi).await?;
    let anthropic = Emulator::start(Wire::Anthropic).await?;
    let gemini = Emulator::start(Wire::Gemini).await?;
    let urls = serde_json::json!({
        "openai": openai.base_url(),
        "anthropic": anthropic.base_url(),
        "gemini": gemini.base_url(),
    });
    println!("{urls}");
    // Until stdin closes.
    let mut sink = Vec::new();
    let _ = tokio::io::stdin().read_to_end(&mut sink).await;
    Ok(())
}
