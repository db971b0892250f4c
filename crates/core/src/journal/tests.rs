//! The journal: lines written and read back, segments, recovery's view.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::line::{self, Line};
use super::recover::read_unheld;
use super::*;

fn start(id: &str) -> Start<'static> {
    Start {
        id: Cow::Owned(id.into()),
        request_id: Cow::Owned(format!("req-{id}")),
        tenant_id: "t".into(),
        key_id: Some("k".into()),
        cost_center: Some("cc".into()),
        model: "gpt-4.1".into(),
        provider: "openai".into(),
        stream: true,
        created_ms: 1_780_000_000_000,
        pool_id: None,
        input_tokens: 100,
        cost_nanos: 200_000,
        ingress: "messages".into(),
    }
}

fn ended(id: &str) -> UsageRecord {
    let s = start(id);
    UsageRecord {
        id: s.id.into_owned(),
        request_id: s.request_id.into_owned(),
        tenant_id: s.tenant_id.into_owned(),
        key_id: s.key_id.map(Cow::into_owned),
        cost_center: s.cost_center.map(Cow::into_owned),
        model_requested: s.model.to_string(),
        model_served: Some(s.model.into_owned()),
        provider: Some(s.provider.into_owned()),
        input_tokens: 90,
        output_tokens: 10,
        cached_tokens: 0,
        cost_nanos: 260_000,
        latency_ms: 12,
        ttft_ms: Some(3),
        status_code: 200,
        outcome: "ok".into(),
        error_code: None,
        stream: true,
        created_ms: s.created_ms,
        pool_id: None,
        ingress: s.ingress.into_owned(),
    }
}

/// A fresh directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tempdir() -> TempDir {
    let d = std::env::temp_dir().join(format!("sheepdog-journal-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&d).unwrap();
    TempDir(d)
}

fn lines(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut paths: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().map(|e| e.path()).collect();
    paths.sort();
    for p in paths {
        out.extend(std::fs::read_to_string(p).unwrap().lines().map(str::to_string));
    }
    out
}

#[test]
fn ended_requests_keep_their_record_and_unended_ones_are_interrupted() {
    let dir = tempdir();
    let j = Journal::open(dir.path(), "r1").unwrap();
    j.start(&start("a"));
    j.finish(&ended("a"));
    j.start(&start("b")); // killed mid-stream, after some output
    j.progress("b", Progress { input_tokens: 100, output_tokens: 7, cost_nanos: 256_000 });
    j.start(&start("c")); // killed before any output
    let mut text = lines(dir.path());
    text.push("{\"t\":\"u\",\"r\":{\"id\":\"cut".into()); // the crash cut the last line
    let records = records_of(text);
    let by_id: HashMap<_, _> = records.iter().map(|r| (r.id.as_str(), r)).collect();
    assert_eq!(records.len(), 3);
    assert_eq!(*by_id["a"], ended("a"));
    let b = by_id["b"];
    assert_eq!((b.outcome.as_str(), b.status_code, b.error_code.as_deref()), ("interrupted", 500, Some("interrupted")));
    assert_eq!((b.input_tokens, b.output_tokens, b.cost_nanos), (100, 7, 256_000));
    assert_eq!((b.tenant_id.as_str(), b.key_id.as_deref(), b.cost_center.as_deref()), ("t", Some("k"), Some("cc")));
    let c = by_id["c"];
    assert_eq!((c.input_tokens, c.output_tokens, c.cost_nanos), (100, 0, 200_000), "billed for the prompt estimate");
}

#[test]
fn a_live_replicas_segment_is_not_taken_and_a_clean_stop_leaves_nothing() {
    let dir = tempdir();
    let j = Journal::open(dir.path(), "r1").unwrap();
    j.start(&start("a"));
    // Another process (another open file description) cannot take it.
    let (held, _) = read_unheld(dir.path(), "r1").unwrap();
    assert!(held.is_empty(), "a held segment is not recovered");
    j.finish(&ended("a"));
    j.close();
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "a record not yet in the database keeps it");
    j.written(["a"]);
    j.close();
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn a_closed_segment_goes_once_its_records_are_written_and_running_requests_are_carried_over() {
    let dir = tempdir();
    let j = Journal::open(dir.path(), "r1").unwrap();
    j.start(&start("long"));
    j.start(&start("a"));
    j.finish(&ended("a"));
    {
        // Rotate now (as if the segment were a minute old).
        let mut s = j.lock();
        if let Some(c) = s.current.as_mut() {
            c.opened -= ROTATE_AFTER;
        }
    }
    j.start(&start("b"));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    j.written(["a"]);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "the old segment went");
    // The new segment alone still knows the long request.
    let records = records_of(lines(dir.path()));
    let ids: Vec<_> = records.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["b", "long"]);
}

#[test]
fn every_line_written_reads_back_as_itself() {
    let mut s = start("a");
    s.cost_center = Some(Cow::Owned("needs \"escaping\" \\ and\ncontrol \u{1} and ünïcode".into()));
    s.pool_id = None;
    let text = String::from_utf8(line::start(&s)).unwrap();
    assert!(text.ends_with('\n') && !text[..text.len() - 1].contains('\n'), "{text}");
    match serde_json::from_str::<Line<'_>>(&text).unwrap() {
        Line::Start(back) => assert_eq!(back, s),
        other => panic!("{other:?}"),
    }
    let p = Progress { input_tokens: 1, output_tokens: -2, cost_nanos: i64::MAX };
    match serde_json::from_str::<Line<'_>>(&String::from_utf8(line::progress("a\"b", p)).unwrap()).unwrap() {
        Line::Progress { id, p: back } => assert_eq!((id.as_str(), back), ("a\"b", p)),
        other => panic!("{other:?}"),
    }
    let mut r = ended("a");
    r.ttft_ms = None;
    r.error_code = Some("tab\there".into());
    r.model_served = None;
    r.pool_id = Some("pool".into());
    r.cost_nanos = i64::MIN;
    match serde_json::from_str::<Line<'_>>(&String::from_utf8(line::usage(&r)).unwrap()).unwrap() {
        Line::Usage { r: back } => assert_eq!(back, r),
        other => panic!("{other:?}"),
    }
}
