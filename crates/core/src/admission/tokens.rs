//! Prompt-token estimates before the call, with a real BPE tokenizer:
//! OpenAI's o200k_base (gpt-4o/4.1 family). No public tokenizer exists for
//! Claude or Gemini models; o200k_base is used for them too and the estimate
//! is settled to the provider's reported usage after the call, so the error
//! only affects how much is reserved for a moment, never what is billed.
//!
//! Bounded work: BPE on a long run of letters without spaces is
//! super-linear (4 MB of random letters took 5.6 s), so at most
//! [`TOKENIZE_BUDGET`] bytes of a request's text are tokenized exactly. Any
//! text beyond it (a whole string at a time) is counted by its UTF-8 byte
//! length: every o200k token covers at least one byte, so that count is an
//! upper bound — never below the true count, and above it by the text's
//! bytes per token minus one (about 4× for English prose, 1× for random
//! letters, up to ~3× for CJK text). Requests under the budget (all
//! ordinary ones) are estimated exactly as before; a larger one reserves at
//! most its byte length, settled to the provider's usage after the call.

/// Framing tokens OpenAI's chat format adds per message, and per reply.
const PER_MESSAGE: u64 = 3;
const PER_REPLY: u64 = 3;

fn count(text: &str) -> u64 {
    if text.is_empty() {
        return 0;
    }
    let tokenize = |t: &str| tiktoken_rs::o200k_base_singleton().encode_ordinary(t).len() as u64;
    SEEN.try_with(|seen| seen.count(text, tokenize)).unwrap_or_else(|_| tokenize(text))
}

/// Texts counted recently on this thread, by a hash of the text and its
/// length: system prompts and tool definitions repeat from request to
/// request, and tokenizing them is the costly part of an estimate (a
/// 2,000-token prompt takes about a million instructions, a lookup a few
/// hundred). Bounded: cleared when full. A hash collision could only change
/// an estimate, never what is billed.
struct Seen {
    hasher: foldhash::fast::RandomState,
    counts: std::cell::RefCell<crate::fastmap::FastMap<(u64, usize), u64>>,
}

/// Entries kept per thread before the cache starts over.
const SEEN_MAX: usize = 4096;

thread_local! {
    static SEEN: Seen = Seen {
        hasher: foldhash::fast::RandomState::default(),
        counts: std::cell::RefCell::new(crate::fastmap::FastMap::default()),
    };
}

impl Seen {
    /// The remembered count of `text`, or `tokenize(text)` remembered.
    fn count(&self, text: &str, tokenize: impl FnOnce(&str) -> u64) -> u64 {
        use std::hash::BuildHasher;
        let key = (self.hasher.hash_one(text), text.len());
        if let Some(n) = self.counts.borrow().get(&key) {
            return *n;
        }
        let n = tokenize(text);
        let mut counts = self.counts.borrow_mut();
        if counts.len() >= SEEN_MAX {
            counts.clear();
        }
        counts.insert(key, n);
        n
    }
}

/// Loads the tokenizer tables (about a second in debug builds) so the first
/// request does not pay for it.
pub async fn warm_up() {
    let _ = tokio::task::spawn_blocking(|| count("warm up")).await;
}

/// Bytes of text tokenized exactly per request; text beyond it is counted
/// by its byte length (see the module documentation). Measured worst case
/// (random lowercase letters, one BPE piece): see `README.md`, Admission.
pub const TOKENIZE_BUDGET: usize = 16 * 1024;

/// Tokens a fixed allowance stands for: an image part (a 512×512 tile costs
/// 170 + 85 on OpenAI).
pub const IMAGE_TOKENS: u64 = 255;

/// Accumulates one request's prompt estimate, tokenizing at most
/// [`TOKENIZE_BUDGET`] bytes.
#[derive(Debug)]
pub struct Estimate {
    total: u64,
    budget: usize,
}

impl Default for Estimate {
    fn default() -> Self {
        Estimate { total: PER_REPLY, budget: TOKENIZE_BUDGET }
    }
}

impl Estimate {
    /// An estimate without the chat format's framing (embedding inputs).
    pub fn bare() -> Self {
        Estimate { total: 0, budget: TOKENIZE_BUDGET }
    }

    /// A message's framing.
    pub fn message(&mut self) {
        self.add(PER_MESSAGE);
    }

    /// A fixed number of tokens (an image allowance, a name's separator).
    pub fn add(&mut self, n: u64) {
        self.total = self.total.saturating_add(n);
    }

    /// Text: tokenized while the budget lasts, else its byte length.
    pub fn text(&mut self, text: &str) {
        let n = if text.len() <= self.budget {
            self.budget -= text.len();
            count(text)
        } else {
            text.len() as u64
        };
        self.add(n);
    }

    pub fn total(&self) -> u64 {
        self.total
    }
}

/// The prompt estimate with a safety margin for tokenizers other than
/// o200k_base (Claude, Gemini count up to ~20 % more on some text), used for
/// worst-case reservations.
pub fn reserve_prompt_tokens(estimate: u64) -> u64 {
    estimate.saturating_add(estimate / 4).saturating_add(16)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn estimate(texts: &[&str]) -> u64 {
        let mut e = Estimate::default();
        for t in texts {
            e.message();
            e.text(t);
        }
        e.total()
    }

    #[test]
    fn counts_like_openai() {
        // "Hello, world!" is 4 tokens in o200k_base; + 3 per message + 3 for the reply.
        assert_eq!(estimate(&["Hello, world!"]), 4 + 3 + 3);
        let long = "word ".repeat(1000);
        let n = estimate(&[&long]);
        assert!((1000..=1010).contains(&n), "{n}");
        assert!(reserve_prompt_tokens(100) > 120);
        assert_eq!(reserve_prompt_tokens(u64::MAX), u64::MAX, "saturates");
    }

    #[test]
    fn text_beyond_the_budget_counts_its_bytes_an_upper_bound() {
        // Under the budget: exact. Over it: the byte length, never less
        // than the exact count.
        let fresh = |t: &str| tiktoken_rs::o200k_base_singleton().encode_ordinary(t).len() as u64;
        let prose = "The quick brown fox jumps over the lazy dog. ".repeat(500); // 22,500 bytes
        assert!(prose.len() > TOKENIZE_BUDGET);
        let mut e = Estimate::default();
        e.text(&prose);
        assert_eq!(e.total(), PER_REPLY + prose.len() as u64);
        assert!(e.total() >= fresh(&prose));
        // The budget is shared by a request's texts: the first fits, the
        // second does not, a small third one still does.
        let half = "word ".repeat(TOKENIZE_BUDGET / 5 - 10);
        let mut e = Estimate::default();
        e.text(&half);
        e.text(&half);
        e.text("Hello, world!");
        assert_eq!(e.total(), PER_REPLY + fresh(&half) + half.len() as u64 + 4);
        // Multi-byte text: bytes, not characters, bound the tokens.
        let cjk = "漢字かな交じり文".repeat(2000);
        let mut e = Estimate::default();
        e.text(&cjk);
        assert_eq!(e.total(), PER_REPLY + cjk.len() as u64);
        assert!(e.total() >= fresh(&cjk));
        let mut e = Estimate::default();
        e.add(u64::MAX);
        e.text("x");
        assert_eq!(e.total(), u64::MAX, "saturates");
    }

    /// The worst case for the tokenizer: random lowercase letters without a
    /// space are one BPE piece. The budget keeps it short.
    #[test]
    fn the_worst_case_text_is_tokenized_in_bounded_time() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut letters = String::with_capacity(4 << 20);
        while letters.len() < 4 << 20 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            letters.push(char::from(b'a' + (x % 26) as u8));
        }
        count("warm up"); // the tables load once (about a second in debug builds)
        for n in [1024, 2048, 4096, 8192, 16384, 32768] {
            let t = std::time::Instant::now();
            let tokens = tiktoken_rs::o200k_base_singleton().encode_ordinary(&letters[..n]).len();
            eprintln!("{n} random letters: {tokens} tokens in {:?}", t.elapsed());
        }
        let t = std::time::Instant::now();
        let mut e = Estimate::default();
        e.text(&letters[1..TOKENIZE_BUDGET + 1]);
        let at_budget = t.elapsed();
        let t = std::time::Instant::now();
        let mut e2 = Estimate::default();
        e2.text(&letters);
        let whole = t.elapsed();
        eprintln!(
            "worst case: {TOKENIZE_BUDGET} random letters tokenized in {at_budget:?}; 4 MiB counted in {whole:?}"
        );
        assert_eq!(e2.total(), PER_REPLY + letters.len() as u64);
        assert!(e.total() <= PER_REPLY + TOKENIZE_BUDGET as u64);
        // Debug builds are ~20× slower than release; either stays short.
        assert!(at_budget < std::time::Duration::from_millis(500), "{at_budget:?}");
        assert!(whole < std::time::Duration::from_millis(50), "{whole:?}");
    }

    #[test]
    fn remembered_counts_equal_fresh_ones_and_the_memory_is_bounded() {
        let fresh = |t: &str| tiktoken_rs::o200k_base_singleton().encode_ordinary(t).len() as u64;
        let prompt = "You are a careful assistant. Answer in one sentence. ".repeat(40);
        assert_eq!(count(&prompt), fresh(&prompt));
        assert_eq!(count(&prompt), fresh(&prompt), "second count (remembered)");
        // Same length, other text: not confused with the remembered one.
        let other = prompt.replacen("careful", "CAREFUL", 1);
        assert_eq!(count(&other), fresh(&other));
        for i in 0..(SEEN_MAX + 10) {
            let t = format!("text number {i}");
            assert_eq!(count(&t), fresh(&t));
        }
        assert!(SEEN.with(|s| s.counts.borrow().len()) <= SEEN_MAX);
    }
}
