//! The translations against the examples of Anthropic's API reference.

use serde_json::{json, Value};

use super::messages::{self, from_chat, to_chat, StreamTranslator};

#[test]
fn the_basic_example_becomes_a_chat_request() {
    // Anthropic's first example: one user message.
    let chat = to_chat(&json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": "Hello, world"}]
    }))
    .unwrap();
    assert_eq!(
        chat,
        json!({"model": "claude-sonnet-4-5", "max_tokens": 1024,
            "messages": [{"role": "user", "content": "Hello, world"}]})
    );
}

#[test]
fn system_images_stops_and_sampling_are_kept() {
    let chat = to_chat(&json!({
        "model": "m", "max_tokens": 10, "temperature": 0.5, "top_p": 0.9,
        "system": [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Use French."}],
        "stop_sequences": ["\n\nHuman:"],
        "metadata": {"user_id": "u-1"},
        "stream": true,
        "messages": [{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQ"}},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
            {"type": "text", "text": "What is in these images?"}
        ]}]
    }))
    .unwrap();
    assert_eq!(chat["messages"][0], json!({"role": "system", "content": "Be brief.\n\nUse French."}));
    let parts = chat["messages"][1]["content"].as_array().unwrap();
    assert_eq!(parts[0]["image_url"]["url"], "data:image/jpeg;base64,/9j/4AAQ");
    assert_eq!(parts[1]["image_url"]["url"], "https://example.com/cat.png");
    assert_eq!(parts[2], json!({"type": "text", "text": "What is in these images?"}));
    assert_eq!((chat["temperature"].clone(), chat["top_p"].clone()), (json!(0.5), json!(0.9)));
    assert_eq!(chat["stop"], json!(["\n\nHuman:"]));
    assert_eq!(chat["user"], "u-1");
    assert_eq!((chat["stream"].clone(), chat["stream_options"].clone()), (json!(true), json!({"include_usage": true})));
}

#[test]
fn the_tool_use_example_round_trips() {
    // Anthropic's get_weather example, with the tool's answer.
    let chat = to_chat(&json!({
        "model": "m", "max_tokens": 1024,
        "tools": [{"name": "get_weather", "description": "Get the current weather in a given location",
                   "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
        "messages": [
            {"role": "user", "content": "What's the weather like in San Francisco?"},
            {"role": "assistant", "content": [
                {"type": "text", "text": "I'll check."},
                {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "get_weather",
                 "input": {"location": "San Francisco, CA"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01A09q90qw90lq917835lq9", "content": "15 degrees"},
                {"type": "text", "text": "And tomorrow?"}]}
        ]
    }))
    .unwrap();
    assert_eq!(chat["tools"][0]["function"]["name"], "get_weather");
    assert_eq!(chat["tools"][0]["function"]["parameters"]["required"], json!(["location"]));
    assert_eq!((chat["tool_choice"].clone(), chat["parallel_tool_calls"].clone()), (json!("required"), json!(false)));
    let m = chat["messages"].as_array().unwrap();
    assert_eq!(m[1]["tool_calls"][0]["id"], "toolu_01A09q90qw90lq917835lq9");
    let args: Value = serde_json::from_str(m[1]["tool_calls"][0]["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"location": "San Francisco, CA"}));
    assert_eq!(m[1]["content"], "I'll check.");
    // The tool result first, then the rest of the user's turn.
    assert_eq!(m[2], json!({"role": "tool", "tool_call_id": "toolu_01A09q90qw90lq917835lq9", "content": "15 degrees"}));
    assert_eq!(m[3]["content"][0]["text"], "And tomorrow?");
    let named = to_chat(&json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}],
        "tool_choice": {"type": "tool", "name": "get_weather"}}))
    .unwrap();
    assert_eq!(named["tool_choice"], json!({"type": "function", "function": {"name": "get_weather"}}));
}

#[test]
fn bad_requests_name_their_field() {
    let field = |body: Value| to_chat(&body).unwrap_err().field;
    assert_eq!(field(json!({"max_tokens": 1, "messages": []})), "model");
    assert_eq!(field(json!({"model": "m", "messages": [{"role": "user", "content": "x"}]})), "max_tokens");
    assert_eq!(field(json!({"model": "m", "max_tokens": 0, "messages": []})), "max_tokens");
    assert_eq!(field(json!({"model": "m", "max_tokens": 1})), "messages");
    assert_eq!(field(json!({"model": "m", "max_tokens": 1, "messages": []})), "messages");
    assert_eq!(
        field(json!({"model": "m", "max_tokens": 1, "messages": [{"role": "system", "content": "x"}]})),
        "messages.0.role"
    );
    assert_eq!(
        field(json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": [{"type": "video"}]}]})),
        "messages.0.content.0.type"
    );
    assert_eq!(
        field(
            json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}], "tool_choice": {"type": "maybe"}})
        ),
        "tool_choice.type"
    );
}

#[test]
fn a_completion_becomes_a_message() {
    let completion = json!({
        "id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4.1",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": "Checking.",
            "tool_calls": [{"id": "call_1", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"location\":\"Paris\"}"}}]}}],
        "usage": {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150,
                  "prompt_tokens_details": {"cached_tokens": 100}}
    });
    let m = from_chat(&completion, "claude-sonnet-4-5");
    assert!(m["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(
        (m["type"].as_str(), m["role"].as_str(), m["model"].as_str()),
        (Some("message"), Some("assistant"), Some("claude-sonnet-4-5"))
    );
    assert_eq!(m["content"][0], json!({"type": "text", "text": "Checking."}));
    assert_eq!(
        m["content"][1],
        json!({"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"location": "Paris"}})
    );
    assert_eq!(m["stop_reason"], "tool_use");
    assert_eq!(
        m["usage"],
        json!({"input_tokens": 20, "output_tokens": 30, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 100})
    );
    for (finish, seq, want) in [
        (Some("stop"), None, "end_turn"),
        (Some("length"), None, "max_tokens"),
        (Some("stop"), Some("\n\nHuman:"), "stop_sequence"),
        (Some("content_filter"), None, "refusal"),
        (None, None, "end_turn"),
    ] {
        assert_eq!(messages::stop_reason(finish, seq), want);
    }
}

#[test]
fn errors_use_anthropics_types() {
    assert_eq!(
        messages::error_body("authentication_error", "bad key"),
        json!({"type": "error", "error": {"type": "authentication_error", "message": "bad key"}})
    );
    for (status, t) in [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (413, "request_too_large"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (502, "api_error"),
        (503, "overloaded_error"),
        (529, "overloaded_error"),
    ] {
        assert_eq!(messages::error_type(status), t, "{status}");
    }
}

#[test]
fn chunks_become_the_documented_event_sequence() {
    let mut t = StreamTranslator::new("claude-sonnet-4-5");
    let chunk = |delta: Value, finish: Value| {
        json!({"object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    let mut events = Vec::new();
    events.extend(t.chunk(&chunk(json!({"role": "assistant", "content": ""}), Value::Null)));
    events.extend(t.chunk(&chunk(json!({"content": "Hello"}), Value::Null)));
    events.extend(t.chunk(&chunk(json!({"content": "!"}), Value::Null)));
    events.extend(t.chunk(&chunk(
        json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
        "function": {"name": "get_weather", "arguments": ""}}]}),
        Value::Null,
    )));
    events.extend(t.chunk(&chunk(
        json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"location\":"}}]}),
        Value::Null,
    )));
    events.extend(
        t.chunk(&chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}]}), Value::Null)),
    );
    events.extend(t.chunk(&chunk(json!({}), json!("tool_calls"))));
    events.extend(t.chunk(&json!({"object": "chat.completion.chunk", "choices": [],
        "usage": {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19}})));
    events.extend(t.finish());
    assert!(t.finish().is_empty(), "closed once");
    let names: Vec<&str> = events.iter().map(|e| e.0).collect();
    assert_eq!(
        names,
        vec![
            "message_start",
            "ping",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
        ]
    );
    assert_eq!(events[2].1["content_block"], json!({"type": "text", "text": ""}));
    assert_eq!(events[3].1["delta"], json!({"type": "text_delta", "text": "Hello"}));
    assert_eq!(events[6].1["index"], 1);
    assert_eq!(events[6].1["content_block"]["type"], "tool_use");
    assert_eq!(events[6].1["content_block"]["name"], "get_weather");
    let json_text: String = events[7..9].iter().map(|e| e.1["delta"]["partial_json"].as_str().unwrap()).collect();
    assert_eq!(serde_json::from_str::<Value>(&json_text).unwrap(), json!({"location": "Paris"}));
    assert_eq!(events[10].1["delta"]["stop_reason"], "tool_use");
    assert_eq!(events[10].1["usage"]["output_tokens"], 7);
    assert_eq!(events[10].1["usage"]["input_tokens"], 12);
    assert_eq!(
        String::from_utf8(crate::ingress::sse(&events[11])).unwrap(),
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
    );
    // A stream cut before any chunk still opens and closes the message.
    let names: Vec<&str> = StreamTranslator::new("m").finish().iter().map(|e| e.0).collect();
    assert_eq!(names, vec!["message_start", "ping", "message_delta", "message_stop"]);
}

#[test]
fn the_translated_request_is_one_the_gateway_takes() {
    let chat = to_chat(&json!({
        "model": "claude-sonnet-4-5", "max_tokens": 64, "stream": true,
        "system": "Be brief.",
        "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}],
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "get_weather", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "15"}]}]}
        ]
    }))
    .unwrap();
    let parsed = crate::request::parse_chat(bytes::Bytes::from(serde_json::to_vec(&chat).unwrap())).unwrap();
    assert_eq!(parsed.requested_model, "claude-sonnet-4-5");
    assert!(parsed.stream);
    assert_eq!(parsed.max_tokens, Some(64));
}

mod responses_format {
    use serde_json::{json, Value};

    use crate::ingress::responses::{from_chat, to_chat, StreamTranslator};

    #[test]
    fn the_documented_requests_become_chat_requests() {
        // OpenAI's first example: a string input.
        let chat =
            to_chat(&json!({"model": "gpt-4.1", "input": "Tell me a three sentence bedtime story about a unicorn."}))
                .unwrap();
        assert_eq!(
            chat,
            json!({"model": "gpt-4.1",
            "messages": [{"role": "user", "content": "Tell me a three sentence bedtime story about a unicorn."}]})
        );
        // Instructions, items, an image, a function call and its output, the options.
        let chat = to_chat(&json!({
            "model": "gpt-4.1", "instructions": "Talk like a pirate.", "max_output_tokens": 50, "temperature": 0.2,
            "stream": true, "tool_choice": {"type": "function", "name": "get_weather"},
            "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}, "strict": true}],
            "input": [
                {"role": "user", "content": [{"type": "input_text", "text": "what is in this image?"},
                    {"type": "input_image", "image_url": "https://example.com/a.jpg"}]},
                {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{\"city\":\"Paris\"}"},
                {"type": "function_call_output", "call_id": "call_1", "output": "15C"}
            ]
        }))
        .unwrap();
        let m = chat["messages"].as_array().unwrap();
        assert_eq!(m[0], json!({"role": "system", "content": "Talk like a pirate."}));
        assert_eq!(m[1]["content"][1], json!({"type": "image_url", "image_url": {"url": "https://example.com/a.jpg"}}));
        assert_eq!(m[2]["tool_calls"][0]["function"]["arguments"], "{\"city\":\"Paris\"}");
        assert_eq!(m[3], json!({"role": "tool", "tool_call_id": "call_1", "content": "15C"}));
        assert_eq!((chat["max_tokens"].clone(), chat["temperature"].clone()), (json!(50), json!(0.2)));
        assert_eq!(chat["tool_choice"], json!({"type": "function", "function": {"name": "get_weather"}}));
        assert_eq!(chat["tools"][0]["function"]["strict"], true);
        assert_eq!(chat["stream_options"], json!({"include_usage": true}));
        // Stateless: a stored conversation cannot be continued.
        let e = to_chat(&json!({"model": "m", "input": "x", "previous_response_id": "resp_1"})).unwrap_err();
        assert_eq!(e.field, "previous_response_id");
        assert_eq!(to_chat(&json!({"model": "m"})).unwrap_err().field, "input");
        assert_eq!(
            to_chat(&json!({"model": "m", "input": [{"type": "web_search_call"}]})).unwrap_err().field,
            "input[0].type"
        );
    }

    #[test]
    fn a_completion_becomes_a_response_and_chunks_its_events() {
        let r = from_chat(&json!({"model": "gpt-4.1", "choices": [{"finish_reason": "length",
            "message": {"role": "assistant", "content": "Once upon"}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 2, "prompt_tokens_details": {"cached_tokens": 4}}}));
        assert_eq!((r["object"].as_str(), r["status"].as_str()), (Some("response"), Some("incomplete")));
        assert_eq!(r["incomplete_details"], json!({"reason": "max_output_tokens"}));
        assert_eq!(
            r["output"][0]["content"][0],
            json!({"type": "output_text", "text": "Once upon", "annotations": []})
        );
        assert_eq!(r["usage"]["total_tokens"], 12);
        assert_eq!(r["usage"]["input_tokens_details"]["cached_tokens"], 4);

        let mut t = StreamTranslator::new();
        let chunk = |delta: Value, finish: Value| json!({"model": "gpt-4.1", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
        let mut ev = Vec::new();
        ev.extend(t.chunk(&chunk(json!({"content": "Hi"}), Value::Null)));
        ev.extend(t.chunk(&chunk(
            json!({"tool_calls": [{"index": 0, "id": "call_1", "function": {"name": "f", "arguments": "{}"}}]}),
            json!("tool_calls"),
        )));
        ev.extend(t.finish());
        let kinds: Vec<&str> = ev.iter().map(|e| e.0).collect();
        assert_eq!(
            kinds,
            vec![
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.completed",
            ]
        );
        let seq: Vec<u64> = ev.iter().map(|e| e.1["sequence_number"].as_u64().unwrap()).collect();
        assert_eq!(seq, (0..ev.len() as u64).collect::<Vec<_>>());
        let done = &ev.last().unwrap().1["response"];
        assert_eq!(done["output"].as_array().unwrap().len(), 2);
        assert_eq!(done["output"][1]["call_id"], "call_1");
    }
}
