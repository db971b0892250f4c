//! Recovery: the segments no live process holds, read back into the usage
//! records they stand for.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use sheepdog_store::UsageRecord;

use super::line::{Line, Progress, Start};

/// The records a set of journal lines stands for: every ended request's
/// record, and an `interrupted` one for each request started and not ended.
pub fn records_of(lines: impl IntoIterator<Item = String>) -> Vec<UsageRecord> {
    let mut starts: HashMap<String, Start<'static>> = HashMap::new();
    let mut progress: HashMap<String, Progress> = HashMap::new();
    let mut ended: BTreeMap<String, UsageRecord> = BTreeMap::new();
    for text in lines {
        // A line cut by the crash (the last one) is not JSON: skipped.
        match serde_json::from_str::<Line<'_>>(&text) {
            Ok(Line::Start(s)) => {
                starts.insert(s.id.to_string(), s.into_owned());
            }
            Ok(Line::Progress { id, p }) => {
                progress.insert(id, p);
            }
            Ok(Line::Usage { r }) => {
                ended.insert(r.id.clone(), r);
            }
            Err(_) => {}
        }
    }
    for (id, s) in starts {
        if ended.contains_key(&id) {
            continue;
        }
        let p = progress.get(&id).copied().unwrap_or(Progress {
            input_tokens: s.input_tokens,
            output_tokens: 0,
            cost_nanos: s.cost_nanos,
        });
        ended.insert(
            id.clone(),
            UsageRecord {
                id,
                request_id: s.request_id.into_owned(),
                tenant_id: s.tenant_id.into_owned(),
                key_id: s.key_id.map(Cow::into_owned),
                cost_center: s.cost_center.map(Cow::into_owned),
                model_requested: s.model.into_owned(),
                model_served: None,
                provider: Some(s.provider.into_owned()),
                input_tokens: p.input_tokens,
                output_tokens: p.output_tokens,
                cached_tokens: 0,
                cost_nanos: p.cost_nanos,
                latency_ms: 0,
                ttft_ms: None,
                status_code: 500,
                outcome: "interrupted".into(),
                error_code: Some("interrupted".into()),
                stream: s.stream,
                created_ms: s.created_ms,
                pool_id: s.pool_id.map(Cow::into_owned),
                ingress: s.ingress.into_owned(),
            },
        );
    }
    ended.into_values().collect()
}

/// The tag of a database's segments: 16 hex digits of the SHA-256 of its URL.
pub fn database_tag(url: &str) -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(url.as_bytes())[..8])
}

/// The segments of a database no live process holds, taken for recovery
/// (locked by us until [`Unheld::done`]), and the records they stand for.
#[derive(Debug)]
pub struct Unheld {
    files: Vec<(PathBuf, File)>,
    pub records: Vec<UsageRecord>,
}

impl Unheld {
    pub fn segments(&self) -> usize {
        self.files.len()
    }

    /// The records are in the database: the segments go (deleted while
    /// still locked).
    pub fn done(self) {
        for (path, _) in &self.files {
            if let Err(e) = std::fs::remove_file(path) {
                tracing::warn!(error = %e, path = %path.display(), "recovered journal segment not deleted");
            }
        }
    }
}

/// Takes every segment of the database tagged `tag` in `dir` that no live
/// process holds (a crashed replica's, this machine's earlier runs'). The
/// caller writes the records that are not in the database yet, then calls
/// [`Unheld::done`]; dropped instead, the segments stay for the next try.
pub async fn take_unheld(dir: &Path, tag: &str) -> std::io::Result<Unheld> {
    let dir = dir.to_path_buf();
    let prefix = format!("{tag}-");
    let (files, lines) =
        tokio::task::spawn_blocking(move || read_unheld(&dir, &prefix)).await.map_err(std::io::Error::other)??;
    Ok(Unheld { records: if files.is_empty() { Vec::new() } else { records_of(lines) }, files })
}

/// Segments taken for recovery: each path with its (locked) handle.
type Held = Vec<(PathBuf, File)>;

/// The lines of every segment no live process holds (locked by us while we
/// read and write them).
pub(super) fn read_unheld(dir: &Path, prefix: &str) -> std::io::Result<(Held, Vec<String>)> {
    let mut files = Vec::new();
    let mut lines = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((files, lines)),
        Err(e) => return Err(e),
    };
    let mut paths: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "journal"))
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(prefix)))
        .collect();
    paths.sort();
    for path in paths {
        let Ok(file) = File::open(&path) else { continue };
        if file.try_lock().is_err() {
            continue; // a live replica's
        }
        for line in BufReader::new(&file).lines() {
            match line {
                Ok(l) => lines.push(l),
                Err(_) => break, // cut mid-line (or not text): the rest is unreadable
            }
        }
        files.push((path, file));
    }
    Ok((files, lines))
}
