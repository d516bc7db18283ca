"""The official `openai` Python client against a running agentgen server.

The server URL comes from AGENTGEN_URL (e.g. http://127.0.0.1:8080); AGENTGEN_API_KEY is sent
when the server wants a key. Runs under pytest or as a plain script.
"""

import json
import os
import sys

import openai
from openai import OpenAI

URL = os.environ.get("AGENTGEN_URL", "http://127.0.0.1:8080").rstrip("/")
KEY = os.environ.get("AGENTGEN_API_KEY", "no-key")


def client() -> OpenAI:
    return OpenAI(base_url=f"{URL}/v1", api_key=KEY, max_retries=0, timeout=300)


def model_id() -> str:
    models = client().models.list().data
    assert models, "the server lists no model"
    return models[0].id


def test_chat():
    resp = client().chat.completions.create(
        model=model_id(),
        messages=[{"role": "user", "content": "What is the capital of France? Answer in one word."}],
        max_tokens=16,
        temperature=0,
    )
    choice = resp.choices[0]
    assert choice.message.role == "assistant"
    assert "Paris" in (choice.message.content or ""), resp
    assert choice.finish_reason in ("stop", "length"), resp
    assert resp.usage.prompt_tokens > 0 and resp.usage.completion_tokens > 0, resp


def test_stream():
    stream = client().chat.completions.create(
        model=model_id(),
        messages=[{"role": "user", "content": "Count from 1 to 5, separated by spaces."}],
        max_tokens=32,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    roles, text, finish, usage = [], [], None, None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.role:
                roles.append(choice.delta.role)
            if choice.delta.content:
                text.append(choice.delta.content)
            if choice.finish_reason:
                finish = choice.finish_reason
    assert roles[:1] == ["assistant"], roles
    assert len(text) > 1, f"expected several deltas, got {text}"
    assert "1" in "".join(text), text
    assert finish in ("stop", "length")
    assert usage is not None and usage.completion_tokens > 0, usage


def test_tools():
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather for a city.",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            },
        }
    ]
    resp = client().chat.completions.create(
        model=model_id(),
        messages=[{"role": "user", "content": "What's the weather in Paris right now?"}],
        tools=tools,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        temperature=0,
    )
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls", resp
    calls = choice.message.tool_calls
    assert calls and calls[0].function.name == "get_weather", resp
    args = json.loads(calls[0].function.arguments)
    assert isinstance(args.get("city"), str) and args["city"], args

    # Hand the result back and get an answer that uses it.
    messages = [
        {"role": "user", "content": "What's the weather in Paris right now?"},
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": calls[0].id, "content": "Sunny, 23 degrees Celsius"},
    ]
    final = client().chat.completions.create(
        model=model_id(), messages=messages, tools=tools, tool_choice="none", max_tokens=48, temperature=0
    )
    assert final.choices[0].message.content, final
    assert "23" in final.choices[0].message.content, final


def test_streamed_tool_call():
    stream = client().chat.completions.create(
        model=model_id(),
        messages=[{"role": "user", "content": "Add 2 and 3."}],
        tools=[
            {
                "type": "function",
                "function": {
                    "name": "add",
                    "parameters": {
                        "type": "object",
                        "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                        "required": ["a", "b"],
                    },
                },
            }
        ],
        tool_choice="required",
        temperature=0,
        stream=True,
    )
    name, args, finish = "", "", None
    for chunk in stream:
        for choice in chunk.choices:
            for call in choice.delta.tool_calls or []:
                name += call.function.name or ""
                args += call.function.arguments or ""
            finish = choice.finish_reason or finish
    assert name == "add", name
    assert set(json.loads(args)) == {"a", "b"}, args
    assert finish == "tool_calls"


def test_errors_are_openai_errors():
    c = client()
    try:
        c.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
        raise AssertionError("an unknown model must fail")
    except openai.NotFoundError as e:
        assert e.code == "model_not_found", e.body
    try:
        c.chat.completions.create(model=model_id(), messages=[])
        raise AssertionError("empty messages must fail")
    except openai.BadRequestError as e:
        assert e.body["param"] == "messages", e.body


if __name__ == "__main__":
    failed = 0
    for name, fn in list(globals().items()):
        if name.startswith("test_") and callable(fn):
            try:
                fn()
                print(f"PASS {name}")
            except Exception as e:  # noqa: BLE001 - report every failure, then exit non-zero
                failed += 1
                print(f"FAIL {name}: {type(e).__name__}: {e}")
    sys.exit(1 if failed else 0)
