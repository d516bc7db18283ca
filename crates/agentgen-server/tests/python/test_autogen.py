"""AutoGen (autogen-agentchat + autogen-ext[openai]) against a running agentgen server.

An AssistantAgent with a Python function tool, its model reached through
OpenAIChatCompletionClient(base_url=AGENTGEN_URL/v1): the tool must be called through our
server and the final answer must carry its result. Also a two-agent team. Runs under pytest
or as a plain script.
"""

import asyncio
import json
import os
import sys
import urllib.request

from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.conditions import MaxMessageTermination
from autogen_agentchat.messages import ToolCallExecutionEvent, ToolCallRequestEvent
from autogen_agentchat.teams import RoundRobinGroupChat
from autogen_ext.models.openai import OpenAIChatCompletionClient

URL = os.environ.get("AGENTGEN_URL", "http://127.0.0.1:8080").rstrip("/")
KEY = os.environ.get("AGENTGEN_API_KEY", "no-key")


def served_model() -> str:
    """The id the server serves, from GET /v1/models (AGENTGEN_MODEL overrides it)."""
    if os.environ.get("AGENTGEN_MODEL"):
        return os.environ["AGENTGEN_MODEL"]
    req = urllib.request.Request(f"{URL}/v1/models", headers={"Authorization": f"Bearer {KEY}"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.load(resp)["data"][0]["id"]


CALLS = []


async def add_numbers(a: int, b: int) -> int:
    """Add two integers and return their sum."""
    CALLS.append((a, b))
    return a + b


def model_client() -> OpenAIChatCompletionClient:
    return OpenAIChatCompletionClient(
        model=served_model(),
        base_url=f"{URL}/v1",
        api_key=KEY,
        temperature=0,
        model_info={
            "vision": False,
            "function_calling": True,
            "json_output": True,
            "family": "unknown",
            "structured_output": True,
        },
    )


def calculator() -> AssistantAgent:
    return AssistantAgent(
        "calculator",
        model_client=model_client(),
        tools=[add_numbers],
        system_message="You are a calculator. Always use the add_numbers tool to add numbers, "
        "then state the result.",
        reflect_on_tool_use=True,
    )


async def run_agent():
    CALLS.clear()
    result = await calculator().run(task="What is 1234 plus 4321? Use the add_numbers tool.")
    requests = [m for m in result.messages if isinstance(m, ToolCallRequestEvent)]
    executions = [m for m in result.messages if isinstance(m, ToolCallExecutionEvent)]
    assert requests, f"the model never asked for a tool: {result.messages}"
    assert CALLS == [(1234, 4321)], f"the tool was called with {CALLS}"
    assert any("5555" in r.content for e in executions for r in e.content), executions
    final = result.messages[-1].to_text()
    assert "5555" in final.replace(",", ""), f"final answer lacks the result: {final!r}"
    print(f"agent final answer: {final!r}")


async def run_team():
    CALLS.clear()
    reporter = AssistantAgent(
        "reporter",
        model_client=model_client(),
        system_message="Repeat the calculator's result in one short sentence.",
    )
    # One round: the calculator (tool call, result, answer), then the reporter.
    team = RoundRobinGroupChat(
        [calculator(), reporter], termination_condition=MaxMessageTermination(6), max_turns=2
    )
    result = await team.run(task="Add 1234 and 4321 with the add_numbers tool.")
    assert CALLS == [(1234, 4321)], f"the tool was called with {CALLS}"
    texts = [m.to_text() for m in result.messages]
    assert any("5555" in t.replace(",", "") for t in texts[1:]), texts
    speakers = {m.source for m in result.messages}
    assert {"calculator", "reporter"} <= speakers, speakers
    print(f"team stopped: {result.stop_reason}; {len(result.messages)} messages")


def test_agent_calls_a_python_tool_through_the_server():
    asyncio.run(run_agent())


def test_team_with_a_tool_using_agent():
    asyncio.run(run_team())


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
