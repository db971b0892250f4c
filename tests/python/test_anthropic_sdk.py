"""The official `anthropic` Python SDK against the real gateway's `/v1/messages`."""

import anthropic
import pytest


def client_for(gateway, key, **kwargs):
    return anthropic.Anthropic(api_key=key, base_url=gateway.url, max_retries=0, **kwargs)


def test_messages_create(gateway):
    _, key = gateway.tenant_with_key("anthropic-plain")
    client = client_for(gateway, key)
    message = client.messages.create(
        model="claude-sonnet-4.5",
        max_tokens=100,
        system="Be brief.",
        messages=[{"role": "user", "content": "Say hello [sim:tokens=6]"}],
    )
    assert message.type == "message"
    assert message.role == "assistant"
    assert message.id.startswith("msg_")
    assert message.content[0].type == "text"
    assert len(message.content[0].text.split()) == 6
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens == 6
    assert message.usage.input_tokens > 0


def test_messages_stream(gateway):
    _, key = gateway.tenant_with_key("anthropic-stream")
    client = client_for(gateway, key)
    with client.messages.stream(
        model="gpt-4.1",
        max_tokens=100,
        messages=[{"role": "user", "content": "Stream please [sim:tokens=5]"}],
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert len(text.split()) == 5
    assert final.content[0].text == text
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 5


def test_tools(gateway):
    _, key = gateway.tenant_with_key("anthropic-tools")
    client = client_for(gateway, key)
    tools = [
        {
            "name": "get_weather",
            "description": "Get the current weather in a given location",
            "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
        }
    ]
    message = client.messages.create(
        model="gpt-4.1",
        max_tokens=100,
        tools=tools,
        messages=[{"role": "user", "content": "Weather in Paris? [sim:tool]"}],
    )
    assert message.stop_reason == "tool_use"
    call = next(b for b in message.content if b.type == "tool_use")
    assert call.name == "get_weather"
    assert isinstance(call.input, dict)
    # The tool's answer goes back as a tool_result block.
    followup = client.messages.create(
        model="gpt-4.1",
        max_tokens=100,
        tools=tools,
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": [b.model_dump() for b in message.content]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "15 degrees"}]},
        ],
    )
    assert followup.stop_reason == "end_turn"
    # Streamed, the call's arguments arrive as input_json_delta events.
    with client.messages.stream(
        model="gpt-4.1",
        max_tokens=100,
        tools=tools,
        messages=[{"role": "user", "content": "Weather in Paris? [sim:tool]"}],
    ) as stream:
        final = stream.get_final_message()
    streamed = next(b for b in final.content if b.type == "tool_use")
    assert streamed.name == "get_weather" and isinstance(streamed.input, dict)


def test_count_tokens(gateway):
    _, key = gateway.tenant_with_key("anthropic-count")
    client = client_for(gateway, key)
    counted = client.messages.count_tokens(
        model="claude-sonnet-4.5", messages=[{"role": "user", "content": "Hello there, how are you today?"}]
    )
    assert counted.input_tokens > 0


def test_errors_are_typed_exceptions(gateway):
    tenant, key = gateway.tenant_with_key("anthropic-errors")
    with pytest.raises(anthropic.AuthenticationError) as e:
        client_for(gateway, "sk-sd-not-a-key").messages.create(
            model="gpt-4.1", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
    assert e.value.status_code == 401
    assert e.value.body["error"]["type"] == "authentication_error"

    with pytest.raises(anthropic.NotFoundError):
        client_for(gateway, key).messages.create(
            model="gpt-404", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )

    with pytest.raises(anthropic.BadRequestError) as e:
        client_for(gateway, key).messages.create(model="gpt-4.1", max_tokens=10, messages=[])
    assert e.value.body["error"]["type"] == "invalid_request_error"

    with pytest.raises(anthropic.InternalServerError):
        client_for(gateway, key).messages.create(
            model="gpt-4.1", max_tokens=10, messages=[{"role": "user", "content": "fail [sim:error=503]"}]
        )

    gateway.admin("PATCH", f"/admin/v1/tenants/{tenant['id']}", {"status": "suspended"})
    with pytest.raises(anthropic.PermissionDeniedError) as e:
        client_for(gateway, key).messages.create(
            model="gpt-4.1", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
    assert e.value.body["error"]["type"] == "permission_error"


@pytest.mark.parametrize("kind", ["openai", "anthropic", "gemini"])
def test_every_upstream_kind(gateway, kind):
    """The same Messages calls answered by each upstream kind's emulator."""
    tenant, key = gateway.tenant_with_key(f"anthropic-via-{kind}")
    client = client_for(gateway, key)
    model = f"via-{kind}"
    message = client.messages.create(
        model=model, max_tokens=100, system="Be brief.", messages=[{"role": "user", "content": "Hello there"}]
    )
    assert "emulator" in message.content[0].text
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    with client.messages.stream(model=model, max_tokens=100, messages=[{"role": "user", "content": "Hello"}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert "emulator" in text and final.content[0].text == text
    assert final.usage.output_tokens > 0
    tools = [{"name": "get_weather", "description": "Weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]
    message = client.messages.create(
        model=model, max_tokens=100, tools=tools, messages=[{"role": "user", "content": "Weather? [emu:tool]"}]
    )
    call = next(b for b in message.content if b.type == "tool_use")
    assert (message.stop_reason, call.name, call.input) == ("tool_use", "get_weather", {"city": "Paris"})
    usage = gateway.admin("GET", f"/admin/v1/usage?group_by=ingress&tenant_id={tenant['id']}")
    rows = {r["key"]: r for r in usage["data"]}
    assert rows["messages"]["requests"] == 3
    assert rows["messages"]["output_tokens"] > 0


def test_client_cut_stream_is_billed(gateway):
    """A stream the client closes early is recorded with what was streamed."""
    tenant, key = gateway.tenant_with_key("anthropic-cut")
    client = client_for(gateway, key)
    with client.messages.stream(
        model="slow", max_tokens=4000, messages=[{"role": "user", "content": "Long story [sim:tokens=3000]"}]
    ) as stream:
        for i, _ in enumerate(stream.text_stream):
            if i == 5:
                break
    import time

    for _ in range(100):
        usage = gateway.admin("GET", f"/admin/v1/usage?group_by=ingress&tenant_id={tenant['id']}")
        rows = {r["key"]: r for r in usage["data"]}
        if rows.get("messages", {}).get("requests") == 1:
            break
        time.sleep(0.1)
    row = rows["messages"]
    assert row["requests"] == 1
    assert row["input_tokens"] > 0
    assert 0 < row["output_tokens"] < 3000, row
    assert row["cost_nanos"] > 0
