use std::borrow::Cow;

use super::*;

fn parse(plan: &Plan, line: &str) -> Result<Record<'static>, String> {
    let mut slots = Slots::new();
    let mut de = serde_json::Deserializer::from_str(line);
    let ok = plan.extract_json(&mut de, &mut slots).map_err(|e| e.to_string())?;
    if !ok {
        return Err("not an object".into());
    }
    let r = plan.resolve(&mut slots, TimestampAt::Start)?;
    Ok(Record {
        tenant: r.tenant.map(|c| Cow::Owned(c.into_owned())),
        model: r.model.map(|c| Cow::Owned(c.into_owned())),
        endpoint: r.endpoint.map(|c| Cow::Owned(c.into_owned())),
        ..r
    })
}

#[test]
fn openai_style_record() {
    let plan = Plan::new(&[], &[]).unwrap();
    let r = parse(
        &plan,
        r#"{"timestamp":"2025-06-01T12:00:00Z","duration_ms":1500,"endpoint":"https://api.openai.com/v1/chat/completions?x=1",
           "metadata":{"tenant_id":"acme"},"request":{"model":"gpt-4.1","messages":[{"role":"user","content":"hi \"there\""}],"max_tokens":5},
           "response":{"model":"gpt-4.1-2025-04-14","usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15,"prompt_tokens_details":{"cached_tokens":4}}},"status":200}"#,
    )
    .unwrap();
    assert_eq!(r.start_ms, 1_748_779_200_000);
    assert_eq!(r.end_ms, Some(1_748_779_201_500));
    assert_eq!(r.tenant.as_deref(), Some("acme"));
    assert_eq!(r.model.as_deref(), Some("gpt-4.1"));
    assert_eq!(r.endpoint.as_deref(), Some("/v1/chat/completions"));
    assert_eq!((r.input, r.output, r.cached, r.has_usage, r.error), (10, 5, 4, true, false));
}

#[test]
fn tenant_paths_headers_and_errors() {
    let plan = Plan::new(&["headers.X-Tenant-ID".to_string()], &[]).unwrap();
    let r = parse(
        &plan,
        r#"{"ts":1748779200,"end_time":"2025-06-01T12:00:02Z","headers":{"x-tenant-id":"t-9"},"model":"m","status":"503","user":"ignored"}"#,
    )
    .unwrap();
    assert_eq!(r.tenant.as_deref(), Some("t-9"));
    assert_eq!(r.end_ms, Some(1_748_779_202_000));
    assert!(r.error && !r.has_usage);
    let r = parse(&plan, r#"{"ts":1748779200,"error":{"message":"x"},"user":"u"}"#).unwrap();
    assert!(r.error);
    assert_eq!(r.tenant, None);
}

#[test]
fn litellm_row_with_string_metadata() {
    let plan = Plan::new(&[], &[]).unwrap();
    let r = parse(
        &plan,
        r#"{"request_id":"r1","call_type":"acompletion","spend":0.1,"total_tokens":30,"prompt_tokens":20,"completion_tokens":10,
           "startTime":"2025-06-01 12:00:00.000","endTime":"2025-06-01 12:00:00.750","model":"gpt-4.1","model_group":"gpt-4.1",
           "metadata":"{\"user_api_key_team_id\": \"team-a\", \"status\": \"failure\"}","status":null}"#,
    )
    .unwrap();
    assert_eq!(r.tenant.as_deref(), Some("team-a"));
    assert_eq!(r.end_ms.unwrap() - r.start_ms, 750);
    assert_eq!(r.endpoint.as_deref(), Some("acompletion"));
    assert!(r.error);
}

#[test]
fn totals_skew_and_unusable() {
    let plan = Plan::new(&[], &[]).unwrap();
    let r = parse(
        &plan,
        r#"{"timestamp":1748779200000,"duration_ms":-5,"usage":{"total_tokens":9,"completion_tokens":4}}"#,
    )
    .unwrap();
    assert!(r.skewed && r.end_ms.is_none());
    assert_eq!((r.input, r.output), (5, 4));
    let r = parse(&plan, r#"{"timestamp":"2025-06-01T12:00:00Z","end_time":"2025-06-01T11:59:59Z"}"#).unwrap();
    assert!(r.skewed);
    assert!(parse(&plan, r#"{"model":"x"}"#).unwrap_err().contains("no timestamp"));
    assert!(parse(&plan, r#"{"timestamp":"soon"}"#).unwrap_err().contains("unreadable timestamp"));
    assert!(parse(&plan, r#"{"timestamp":1,"usage":{"prompt_tokens":"many"}}"#).is_err());
    assert!(parse(&plan, r#"[1,2]"#).is_err());
    let r = parse(
        &plan,
        r#"{"timestamp":1748779200,"usage":{"input_tokens":3,"cache_read_input_tokens":7,"output_tokens":1}}"#,
    )
    .unwrap();
    assert_eq!((r.input, r.cached, r.output), (10, 7, 1));
}

#[test]
fn dotted_csv_columns_walk_the_paths() {
    let plan = Plan::new(&[], &[("a.b".into(), Field::Tenant)]).unwrap();
    let mut slots = Slots::new();
    for (col, val) in
        [("usage.prompt_tokens", "12"), ("metadata.tenant_id", "ignored"), ("a.b", "t1"), ("ts", "1748779200")]
    {
        plan.put_text(plan.column(col).unwrap(), val, &mut slots);
    }
    assert!(plan.column("usage.nothing").is_none());
    let r = plan.resolve(&mut slots, TimestampAt::Start).unwrap();
    assert_eq!(r.tenant.as_deref(), Some("t1"));
    assert_eq!(r.input, 12);
}

#[test]
fn explicit_mapping_wins() {
    let plan = Plan::new(&[], &[("org".into(), Field::Tenant), ("took".into(), Field::DurationS)]).unwrap();
    let r = parse(&plan, r#"{"timestamp":1748779200,"org":"o1","tenant_id":"x","took":0.25}"#).unwrap();
    assert_eq!(r.tenant.as_deref(), Some("o1"));
    assert_eq!(r.end_ms.unwrap() - r.start_ms, 250);
}
