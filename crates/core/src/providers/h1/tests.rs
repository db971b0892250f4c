use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use hyper::header::{HeaderMap, HeaderValue};
use hyper::{StatusCode, Uri};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::framing::{Chunk, Framing, Step, MAX_CHUNK_LINE, MAX_TRAILER_BYTES};
use super::head::{content_length, MAX_HEAD_BYTES};
use super::request::INLINE_BODY_BYTES;
use super::*;

/// What the test upstream does for one request: write `reply` (in the
/// given pieces, with a pause between), then close the connection if
/// `close`.
#[derive(Clone)]
struct Reply {
    pieces: Vec<Vec<u8>>,
    close: bool,
}

fn reply(text: &str) -> Reply {
    Reply { pieces: vec![text.as_bytes().to_vec()], close: false }
}

/// What the test upstream saw: connections accepted, requests (whole,
/// head and body) in arrival order.
#[derive(Default)]
struct Seen {
    connections: usize,
    requests: Vec<Vec<u8>>,
}

/// A raw HTTP/1.1 upstream answering its n-th request (over all
/// connections) with `replies[n]` (the last one repeated).
async fn server(replies: Vec<Reply>) -> (Uri, Arc<Mutex<Seen>>) {
    let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
        Ok(l) => l,
        Err(e) => panic!("bind: {e}"),
    };
    let addr = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => panic!("addr: {e}"),
    };
    let seen = Arc::new(Mutex::new(Seen::default()));
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            record.lock().map(|mut s| s.connections += 1).ok();
            let record = record.clone();
            let replies = replies.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let (head_end, length) = loop {
                        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                            let length = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .and_then(|v| v.trim().parse::<usize>().ok())
                                .unwrap_or(0);
                            break (end + 4, length);
                        }
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    while buf.len() < head_end + length {
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let request: Vec<u8> = buf.drain(..head_end + length).collect();
                    let n = match record.lock() {
                        Ok(mut s) => {
                            s.requests.push(request);
                            s.requests.len() - 1
                        }
                        Err(_) => return,
                    };
                    let Some(reply) = replies.get(n).or(replies.last()).cloned() else { return };
                    for (i, piece) in reply.pieces.iter().enumerate() {
                        if i > 0 {
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                        if socket.write_all(piece).await.is_err() {
                            return;
                        }
                    }
                    if reply.close {
                        return;
                    }
                }
            });
        }
    });
    let uri = match format!("http://{addr}/v1/chat/completions").parse::<Uri>() {
        Ok(u) => u,
        Err(e) => panic!("uri: {e}"),
    };
    (uri, seen)
}

fn connections(seen: &Arc<Mutex<Seen>>) -> usize {
    seen.lock().map(|s| s.connections).unwrap_or(0)
}

fn requests(seen: &Arc<Mutex<Seen>>) -> Vec<Vec<u8>> {
    seen.lock().map(|s| s.requests.clone()).unwrap_or_default()
}

async fn send(client: u64, uri: &Uri, body: &[u8]) -> Result<Answer, SendError> {
    post(client, uri, &HeaderMap::new(), &Bytes::copy_from_slice(body), Duration::from_secs(2)).await
}

/// The whole body, or the error that ended it.
async fn read(mut body: Body) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    while let Some(piece) = body.next().await {
        out.extend_from_slice(&piece.map_err(|e| e.to_string())?);
    }
    Ok(out)
}

/// Sends, expects `status`, and returns the body as text.
async fn call(client: u64, uri: &Uri, status: u16) -> String {
    let answer = match send(client, uri, b"{}").await {
        Ok(a) => a,
        Err(e) => panic!("post: {e}"),
    };
    assert_eq!(answer.status.as_u16(), status);
    match read(answer.body).await {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) => panic!("body: {e}"),
    }
}

/// Lets the runtime's poller see what the test upstream did.
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
}

const OK: &str = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 8\r\n\r\n{\"ok\":1}";

#[tokio::test(flavor = "current_thread")]
async fn sequential_requests_reuse_one_connection() {
    let (uri, seen) = server(vec![reply(OK)]).await;
    for _ in 0..5 {
        assert_eq!(call(9_001, &uri, 200).await, r#"{"ok":1}"#);
    }
    assert_eq!(connections(&seen), 1);
}

#[tokio::test(flavor = "current_thread")]
async fn the_request_goes_out_as_http_1_1_with_its_headers_and_body() {
    let (uri, seen) = server(vec![reply(OK)]).await;
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    headers.insert("authorization", HeaderValue::from_static("Bearer sk-test"));
    // Framing headers from the caller are not repeated.
    headers.insert("content-length", HeaderValue::from_static("999"));
    headers.insert("host", HeaderValue::from_static("elsewhere"));
    let small = Bytes::from_static(br#"{"model":"m"}"#);
    let large = Bytes::from(vec![b'x'; INLINE_BODY_BYTES + 10]);
    for body in [&small, &large] {
        match post(9_002, &uri, &headers, body, Duration::from_secs(2)).await {
            Ok(answer) => assert!(read(answer.body).await.is_ok()),
            Err(e) => panic!("post: {e}"),
        }
    }
    let sent = requests(&seen);
    assert_eq!(sent.len(), 2);
    let host = uri.authority().map(|a| a.as_str().to_string()).unwrap_or_default();
    let expected = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n\
         authorization: Bearer sk-test\r\ncontent-length: 13\r\n\r\n{{\"model\":\"m\"}}"
    );
    assert_eq!(String::from_utf8_lossy(&sent[0]), expected);
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n\
         authorization: Bearer sk-test\r\ncontent-length: {}\r\n\r\n",
        large.len()
    );
    assert_eq!(&sent[1][..head.len()], head.as_bytes());
    assert_eq!(&sent[1][head.len()..], &large[..]);
    assert_eq!(connections(&seen), 1);
}

#[tokio::test(flavor = "current_thread")]
async fn a_connection_closed_while_idle_is_replaced() {
    let (uri, seen) = server(vec![Reply { close: true, ..reply(OK) }]).await;
    for _ in 0..3 {
        assert_eq!(call(9_003, &uri, 200).await, r#"{"ok":1}"#);
        settle().await;
    }
    assert_eq!(connections(&seen), 3);
    assert_eq!(requests(&seen).len(), 3, "no request is sent twice");
}

#[tokio::test(flavor = "current_thread")]
async fn chunked_answers_arriving_in_pieces_are_read_whole() {
    let chunked = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\
                   5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nx-trailer: t\r\n\r\n";
    let pieces: Vec<Vec<u8>> = chunked.as_bytes().chunks(7).map(<[u8]>::to_vec).collect();
    let (uri, seen) = server(vec![Reply { pieces, close: false }]).await;
    for _ in 0..2 {
        assert_eq!(call(9_004, &uri, 200).await, "hello, world");
    }
    assert_eq!(connections(&seen), 1, "a chunked answer read to its end keeps the connection");
}

#[tokio::test(flavor = "current_thread")]
async fn answers_ending_with_the_connection_or_saying_close_are_not_reused() {
    let until_close = Reply { close: true, ..reply("HTTP/1.1 200 OK\r\n\r\nall of it") };
    let says_close = reply("HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok");
    let http10 = reply("HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok");
    let http10_kept = reply("HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 2\r\n\r\nok");
    let (uri, seen) = server(vec![until_close, says_close, http10, http10_kept.clone(), http10_kept]).await;
    assert_eq!(call(9_005, &uri, 200).await, "all of it");
    assert_eq!(call(9_005, &uri, 200).await, "ok");
    assert_eq!(call(9_005, &uri, 200).await, "ok");
    assert_eq!(call(9_005, &uri, 200).await, "ok");
    assert_eq!(call(9_005, &uri, 200).await, "ok");
    assert_eq!(connections(&seen), 4, "only the HTTP/1.0 keep-alive answer left its connection for the next");
}

#[tokio::test(flavor = "current_thread")]
async fn interim_answers_are_skipped_and_no_content_has_no_body() {
    // Interim answers, then the final one, in one reply.
    let (uri, seen) = server(vec![
        reply(&format!("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n{OK}")),
        reply("HTTP/1.1 204 No Content\r\n\r\n"),
        reply(OK),
    ])
    .await;
    assert_eq!(call(9_006, &uri, 200).await, r#"{"ok":1}"#);
    assert_eq!(call(9_006, &uri, 204).await, "");
    assert_eq!(call(9_006, &uri, 200).await, r#"{"ok":1}"#);
    assert_eq!(connections(&seen), 1);
}

#[tokio::test(flavor = "current_thread")]
async fn an_error_answer_keeps_its_headers() {
    let (uri, _) =
        server(vec![reply("HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\ncontent-length: 4\r\n\r\nslow")]).await;
    let answer = match send(9_015, &uri, b"{}").await {
        Ok(a) => a,
        Err(e) => panic!("post: {e}"),
    };
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(answer.headers.get("retry-after").map(|v| v.as_bytes()), Some(&b"7"[..]));
    assert_eq!(read(answer.body).await.as_deref(), Ok(&b"slow"[..]));
}

#[tokio::test(flavor = "current_thread")]
async fn an_abandoned_answer_keeps_its_connection_only_when_the_rest_is_on_hand() {
    // The whole answer arrives at once: dropping it unread keeps the connection.
    let (uri, seen) = server(vec![reply(OK)]).await;
    match send(9_007, &uri, b"{}").await {
        Ok(answer) => drop(answer),
        Err(e) => panic!("post: {e}"),
    }
    assert_eq!(call(9_007, &uri, 200).await, r#"{"ok":1}"#);
    assert_eq!(connections(&seen), 1);

    // The body is still coming: the connection is closed, the next call
    // gets a new one and its own answer.
    let slow = Reply {
        pieces: vec![b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n12345".to_vec(), b"67890".to_vec()],
        close: false,
    };
    let (uri, seen) = server(vec![slow, reply(OK)]).await;
    match send(9_008, &uri, b"{}").await {
        Ok(answer) => drop(answer),
        Err(e) => panic!("post: {e}"),
    }
    assert_eq!(call(9_008, &uri, 200).await, r#"{"ok":1}"#);
    assert_eq!(connections(&seen), 2);
}

#[tokio::test(flavor = "current_thread")]
async fn broken_answers_fail_the_call_and_are_not_reused() {
    let cut = Reply { close: true, ..reply("HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n12345") };
    let (uri, seen) = server(vec![cut, reply(OK)]).await;
    let answer = match send(9_009, &uri, b"{}").await {
        Ok(a) => a,
        Err(e) => panic!("post: {e}"),
    };
    let err = read(answer.body).await.err().unwrap_or_default();
    assert!(err.contains("closed the connection mid-answer"), "{err}");
    assert_eq!(call(9_009, &uri, 200).await, r#"{"ok":1}"#);
    assert_eq!(connections(&seen), 2);

    for (bad, why) in [
        ("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n", "chunk size is invalid"),
        ("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n", "does not end"),
    ] {
        let (uri, _) = server(vec![reply(bad)]).await;
        let answer = match send(9_010, &uri, b"{}").await {
            Ok(a) => a,
            Err(e) => panic!("post: {e}"),
        };
        let err = read(answer.body).await.err().unwrap_or_default();
        assert!(err.contains(why), "{bad:?}: {err}");
    }
    for (bad, why) in [
        ("HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\nok", "conflicting"),
        ("HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n", "Content-Length is invalid"),
        ("HTTP/1.1 2x0 OK\r\n\r\n", "malformed"),
        ("not http at all\r\n\r\n", "malformed"),
        ("HTTP/1.1 101 Switching Protocols\r\n\r\n", "switched protocols"),
    ] {
        let (uri, _) = server(vec![Reply { close: true, ..reply(bad) }]).await;
        match send(9_011, &uri, b"{}").await {
            Ok(a) => panic!("{bad:?} was taken as an answer with status {}", a.status),
            Err(e) => assert!(e.to_string().contains(why), "{bad:?}: {e}"),
        }
    }
    let (uri, _) = server(vec![Reply { close: true, ..reply("") }]).await;
    match send(9_012, &uri, b"{}").await {
        Ok(a) => panic!("a closed connection answered {}", a.status),
        Err(e) => assert!(e.to_string().contains("without an answer"), "{e}"),
    }
    let huge = format!("HTTP/1.1 200 OK\r\nx-big: {}\r\n", "a".repeat(MAX_HEAD_BYTES + 1));
    let (uri, _) = server(vec![reply(&huge)]).await;
    match send(9_013, &uri, b"{}").await {
        Ok(a) => panic!("an oversized head was taken, status {}", a.status),
        Err(e) => assert!(e.to_string().contains("too large"), "{e}"),
    }
}

#[tokio::test(flavor = "current_thread")]
async fn refused_connections_are_connect_errors() {
    let port = match std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()) {
        Ok(a) => a.port(),
        Err(e) => panic!("bind: {e}"),
    };
    let uri = match format!("http://127.0.0.1:{port}/x").parse::<Uri>() {
        Ok(u) => u,
        Err(e) => panic!("uri: {e}"),
    };
    assert!(matches!(send(9_014, &uri, b"").await, Err(SendError::Connect)));
}

/// Feeds `input` to a chunked reader in pieces of `size` bytes.
fn dechunk(input: &[u8], size: usize) -> Result<(Vec<u8>, usize), &'static str> {
    let mut framing = Framing::Chunked(Chunk::Size);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut pieces = input.chunks(size);
    loop {
        match framing.step(&mut buf)? {
            Step::Data(d) => out.extend_from_slice(&d),
            Step::End => return Ok((out, buf.len())),
            Step::NeedMore => match pieces.next() {
                Some(p) => buf.extend_from_slice(p),
                None => return Err("ran out of input"),
            },
        }
    }
}

#[test]
fn the_chunked_reader_takes_input_split_anywhere() {
    let body = b"4\r\nWiki\r\n5;name=value\r\npedia\r\nE \r\n in\r\n\r\nchunks.\r\n0\r\nx-a: 1\r\nx-b: 2\r\n\r\nNEXT";
    for size in 1..body.len() {
        assert_eq!(
            dechunk(body, size),
            Ok((b"Wikipedia in\r\n\r\nchunks.".to_vec(), rest(body, size))),
            "pieces of {size}"
        );
    }
    // Bare line feeds are taken as line ends too.
    assert_eq!(dechunk(b"3\nabc\n0\n\n", 100), Ok((b"abc".to_vec(), 0)));
}

/// How many bytes after the body's end were already buffered when it
/// ended, for input fed in pieces of `size`.
fn rest(body: &[u8], size: usize) -> usize {
    let end = body.len() - b"NEXT".len();
    (end.div_ceil(size) * size).min(body.len()) - end
}

#[test]
fn the_chunked_reader_refuses_broken_framing() {
    for (bad, why) in [
        (&b"g\r\n"[..], "a chunk size is invalid"),
        (b"\r\n", "a chunk size is invalid"),
        (b"1234567890abcdef0\r\n", "a chunk size is invalid"),
        (b"3\r\nabcd\r\n", "a chunk does not end where its size says"),
    ] {
        assert_eq!(dechunk(bad, 100).map(|(d, _)| d), Err(why), "{bad:?}");
    }
    let long_line = vec![b'1'; MAX_CHUNK_LINE + 1];
    assert_eq!(dechunk(&long_line, MAX_CHUNK_LINE + 1).map(|(d, _)| d), Err("a chunk size line is too long"));
    let mut trailers = b"0\r\n".to_vec();
    trailers.extend(std::iter::repeat_n(&b"x-t: 1\r\n"[..], MAX_TRAILER_BYTES / 8 + 1).flatten());
    assert_eq!(dechunk(&trailers, 4096).map(|(d, _)| d), Err("the trailer section is too long"));
}

#[test]
fn content_length_values() {
    assert_eq!(content_length(b"0"), Some(0));
    assert_eq!(content_length(b" 42 "), Some(42));
    assert_eq!(content_length(b"42, 42"), Some(42));
    for bad in [&b""[..], b"-1", b"+1", b"4 2", b"42, 43", b"0x10", b"99999999999999999999"] {
        assert_eq!(content_length(bad), None, "{bad:?}");
    }
}
