"""The official `openai` Python SDK against the real gateway."""

import json
import uuid

import openai
import pytest


def client_for(gateway, key, **kwargs):
    return openai.OpenAI(api_key=key, base_url=gateway.url + "/v1", max_retries=0, **kwargs)


def test_plain_completion(gateway):
    tenant, key = gateway.tenant_with_key("sdk-plain")
    client = client_for(gateway, key)
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4.1", messages=[{"role": "user", "content": "Say hello [sim:tokens=6]"}]
    )
    assert raw.headers["x-sheepdog-model"] == "gpt-4.1"
    assert raw.headers["x-sheepdog-provider"] == "simulated"
    assert raw.headers["x-request-id"]
    completion = raw.parse()
    assert completion.object == "chat.completion"
    assert completion.system_fingerprint == "sheepdog-simulated"
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.completion_tokens == 6
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + 6


def test_streamed_completion_with_and_without_usage(gateway):
    _, key = gateway.tenant_with_key("sdk-stream")
    client = client_for(gateway, key)
    stream = client.chat.completions.create(
        model="claude-sonnet-4.5",
        messages=[{"role": "user", "content": "Stream please [sim:tokens=5]"}],
        stream=True,
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(text.split()) == 5
    assert all(c.usage is None for c in chunks), "usage chunk must be hidden when not asked for"
    assert chunks[-1].choices[0].finish_reason == "stop"

    stream = client.chat.completions.create(
        model="claude-sonnet-4.5",
        messages=[{"role": "user", "content": "Stream please [sim:tokens=5]"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[-1].choices == []
    assert chunks[-1].usage.completion_tokens == 5


def test_tool_calls(gateway):
    _, key = gateway.tenant_with_key("sdk-tools")
    client = client_for(gateway, key)
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather for a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
            },
        }
    ]
    completion = client.chat.completions.create(
        model="gemini-2.5-flash", messages=[{"role": "user", "content": "Weather? [sim:tool]"}], tools=tools
    )
    call = completion.choices[0].message.tool_calls[0]
    assert completion.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather"
    json.loads(call.function.arguments)

    stream = client.chat.completions.create(
        model="gemini-2.5-flash", messages=[{"role": "user", "content": "Weather? [sim:tool]"}], tools=tools, stream=True
    )
    names = [
        tc.function.name
        for c in stream
        if c.choices and c.choices[0].delta.tool_calls
        for tc in c.choices[0].delta.tool_calls
        if tc.function and tc.function.name
    ]
    assert names == ["get_weather"]

    # The tool result goes back in a second turn.
    follow_up = client.chat.completions.create(
        model="gemini-2.5-flash",
        messages=[
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
            {"role": "tool", "tool_call_id": call.id, "content": '{"temp": 21}'},
        ],
        tools=tools,
    )
    assert follow_up.choices[0].message.content


def test_platform_key_with_tenant_header(gateway):
    tenant, _ = gateway.tenant_with_key("sdk-platform", aliases=["sdk-alias"])
    platform = gateway.admin("POST", "/admin/v1/keys", {"scope": "platform", "tenants": "*"})
    client = client_for(gateway, platform["key"], default_headers={"X-Tenant-ID": tenant["id"]})
    assert client.chat.completions.create(model="deepseek-v3.2", messages=[{"role": "user", "content": "hi"}]).choices
    by_alias = client_for(gateway, platform["key"], default_headers={"X-Tenant-ID": "sdk-alias", "X-Cost-Center": "sdk"})
    assert by_alias.chat.completions.create(model="deepseek-v3.2", messages=[{"role": "user", "content": "hi"}]).choices
    models = [m.id for m in client.models.list()]
    assert "deepseek-v3.2" in models

    # Without X-Tenant-ID a platform key is refused with 400 tenant_required.
    bare = client_for(gateway, platform["key"])
    with pytest.raises(openai.BadRequestError) as e:
        bare.chat.completions.create(model="deepseek-v3.2", messages=[{"role": "user", "content": "hi"}])
    assert e.value.code == "tenant_required"


def test_errors_are_typed_exceptions(gateway):
    tenant, key = gateway.tenant_with_key("sdk-errors")
    other, _ = gateway.tenant_with_key("sdk-other")
    with pytest.raises(openai.AuthenticationError) as e:
        client_for(gateway, "sk-sd-not-a-key").chat.completions.create(
            model="gpt-4.1", messages=[{"role": "user", "content": "hi"}]
        )
    assert e.value.status_code == 401 and e.value.code == "invalid_api_key"

    with pytest.raises(openai.PermissionDeniedError) as e:
        client_for(gateway, key, default_headers={"X-Tenant-ID": other["id"]}).chat.completions.create(
            model="gpt-4.1", messages=[{"role": "user", "content": "hi"}]
        )
    assert e.value.status_code == 403 and e.value.code == "tenant_mismatch"

    with pytest.raises(openai.PermissionDeniedError) as e:
        client_for(gateway, key, default_headers={"X-Tenant-ID": "not-a-uuid"}).chat.completions.create(
            model="gpt-4.1", messages=[{"role": "user", "content": "hi"}]
        )
    assert e.value.code == "invalid_tenant_id"
    assert "UUID v4" in e.value.message

    with pytest.raises(openai.NotFoundError) as e:
        client_for(gateway, key).chat.completions.create(model="gpt-404", messages=[{"role": "user", "content": "hi"}])
    assert e.value.status_code == 404 and e.value.code == "model_not_found"

    with pytest.raises(openai.BadRequestError) as e:
        client_for(gateway, key).chat.completions.create(model="gpt-4.1", messages=[])
    assert e.value.code == "invalid_request_error"

    gateway.admin("PATCH", f"/admin/v1/tenants/{tenant['id']}", {"status": "suspended"})
    with pytest.raises(openai.PermissionDeniedError) as e:
        client_for(gateway, key).chat.completions.create(model="gpt-4.1", messages=[{"role": "user", "content": "hi"}])
    assert e.value.code == "tenant_suspended"

    with pytest.raises(openai.InternalServerError) as e:
        _, key2 = gateway.tenant_with_key("sdk-upstream")
        client_for(gateway, key2).chat.completions.create(
            model="gpt-4.1", messages=[{"role": "user", "content": "fail [sim:error=503]"}]
        )
    assert e.value.status_code == 502 and e.value.code == "upstream_error"


def test_usage_is_recorded_per_cost_center(gateway):
    tenant, key = gateway.tenant_with_key("sdk-usage")
    client = client_for(gateway, key, default_headers={"X-Cost-Center": "sdk-team"})
    total = 0
    for i in range(5):
        c = client.chat.completions.create(
            model="deepseek-v3.2", messages=[{"role": "user", "content": f"n{i} {uuid.uuid4()} [sim:tokens=10]"}]
        )
        total += c.usage.prompt_tokens * 100 + c.usage.completion_tokens * 420
    usage = gateway.admin("GET", f"/admin/v1/usage?group_by=cost_center&tenant_id={tenant['id']}")
    row = next(r for r in usage["data"] if r["key"] == "sdk-team")
    assert row["requests"] == 5
    assert row["cost_nanos"] == total


def test_responses_create_and_stream(gateway):
    _, key = gateway.tenant_with_key("sdk-responses")
    client = client_for(gateway, key)
    response = client.responses.create(
        model="gpt-4.1", instructions="Be brief.", input="Say hello [sim:tokens=6]", max_output_tokens=100
    )
    assert response.object == "response"
    assert response.status == "completed"
    assert response.id.startswith("resp_")
    assert len(response.output_text.split()) == 6
    assert response.usage.output_tokens == 6
    assert response.usage.total_tokens == response.usage.input_tokens + 6

    items = client.responses.create(
        model="gpt-4.1",
        input=[
            {"role": "user", "content": [{"type": "input_text", "text": "Hi"}]},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "Again [sim:tokens=3]"},
        ],
    )
    assert len(items.output_text.split()) == 3

    with client.responses.stream(model="claude-sonnet-4.5", input="Stream please [sim:tokens=5]") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert len("".join(deltas).split()) == 5
    assert final.output_text == "".join(deltas)
    assert final.usage.output_tokens == 5


def test_responses_function_calls(gateway):
    _, key = gateway.tenant_with_key("sdk-responses-tools")
    client = client_for(gateway, key)
    tools = [{"type": "function", "name": "get_weather", "description": "Weather",
              "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]
    response = client.responses.create(model="gpt-4.1", tools=tools, input="Weather in Paris? [sim:tool]")
    call = next(o for o in response.output if o.type == "function_call")
    assert call.name == "get_weather"
    json.loads(call.arguments)
    followup = client.responses.create(
        model="gpt-4.1",
        tools=tools,
        input=[
            {"role": "user", "content": "Weather in Paris?"},
            {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
            {"type": "function_call_output", "call_id": call.call_id, "output": "15 degrees"},
        ],
    )
    assert followup.output_text
    with client.responses.stream(model="gpt-4.1", tools=tools, input="Weather in Paris? [sim:tool]") as stream:
        events = [e.type for e in stream]
        final = stream.get_final_response()
    assert "response.function_call_arguments.delta" in events
    assert events[-1] == "response.completed"
    assert any(o.type == "function_call" and o.name == "get_weather" for o in final.output)

    with pytest.raises(openai.BadRequestError) as e:
        client.responses.create(model="gpt-4.1", input="hi", previous_response_id="resp_123")
    assert e.value.status_code == 400 and "previous_response_id" in e.value.message


@pytest.mark.parametrize("kind", ["openai", "anthropic", "gemini"])
def test_responses_on_every_upstream_kind(gateway, kind):
    tenant, key = gateway.tenant_with_key(f"sdk-responses-via-{kind}")
    client = client_for(gateway, key)
    model = f"via-{kind}"
    response = client.responses.create(model=model, instructions="Be brief.", input="Hello there")
    assert "emulator" in response.output_text
    assert response.usage.input_tokens > 0 and response.usage.output_tokens > 0
    with client.responses.stream(model=model, input="Hello") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert final.output_text == "".join(deltas) and "emulator" in final.output_text
    tools = [{"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]
    called = client.responses.create(model=model, tools=tools, input="Weather? [emu:tool]")
    call = next(o for o in called.output if o.type == "function_call")
    assert (call.name, json.loads(call.arguments)) == ("get_weather", {"city": "Paris"})
    usage = gateway.admin("GET", f"/admin/v1/usage?group_by=ingress&tenant_id={tenant['id']}")
    assert {r["key"]: r["requests"] for r in usage["data"]} == {"responses": 3}


@pytest.mark.parametrize("kind", ["openai", "gemini", "sim"])
def test_embeddings_create(gateway, kind):
    tenant, key = gateway.tenant_with_key(f"sdk-embeddings-{kind}")
    client = client_for(gateway, key)
    model = f"embed-{kind}"
    # The SDK asks for base64 by default and decodes it into floats.
    result = client.embeddings.create(model=model, input=["The food was delicious", "and the waiter kind"], dimensions=16)
    assert [d.index for d in result.data] == [0, 1]
    assert all(len(d.embedding) == 16 for d in result.data)
    assert abs(sum(x * x for x in result.data[0].embedding) - 1.0) < 1e-3
    assert result.usage.prompt_tokens > 0
    floats = client.embeddings.create(model=model, input="The food was delicious", dimensions=16, encoding_format="float")
    assert all(abs(a - b) < 1e-6 for a, b in zip(floats.data[0].embedding, result.data[0].embedding))
    one = client.embeddings.create(model=model, input="hello")
    assert len(one.data) == 1 and len(one.data[0].embedding) > 16
    with pytest.raises(openai.BadRequestError) as e:
        client.embeddings.create(model="gpt-4.1", input="hello")
    assert e.value.status_code == 400 and e.value.body["param"] == "model"
    usage = gateway.admin("GET", f"/admin/v1/usage?group_by=ingress&tenant_id={tenant['id']}")
    (row,) = usage["data"]
    assert (row["key"], row["requests"], row["output_tokens"]) == ("embeddings", 3, 0)
    assert row["cost_nanos"] == row["input_tokens"] * 20
    models = {m.id: m for m in client.models.list()}
    assert models[model].model_extra["mode"] == "embedding"
    assert models["gpt-4.1"].model_extra["mode"] == "chat"
