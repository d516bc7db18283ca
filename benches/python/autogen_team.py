"""The benchmark's agent-team workload written with AutoGen (autogen-agentchat 0.7), run against
any OpenAI-compatible server: `agentgen serve`, llama-server, ...

The same team as `benches/src/team.rs`: a round-robin chat of a planner, a calculator with a
`calculate` tool (one tool round, then it answers in words) and a reviewer, temperature 0, for a
fixed number of messages after the task. Prints one JSON object per run on stdout: wall time,
requests' usage as AutoGen reports it, and the messages' sources.

    python autogen_team.py --base-url http://127.0.0.1:8080/v1 --model ID [--messages 12]
        [--max-tokens 64] [--runs 1] [--tag TAG]
"""

import argparse
import asyncio
import ast
import json
import operator
import sys
import time

from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.conditions import MaxMessageTermination
from autogen_agentchat.teams import RoundRobinGroupChat
from autogen_core.models import ModelInfo
from autogen_ext.models.openai import OpenAIChatCompletionClient

OPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}


def _eval(node):
    if isinstance(node, ast.Expression):
        return _eval(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in OPS:
        return OPS[type(node.op)](_eval(node.left), _eval(node.right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in OPS:
        return OPS[type(node.op)](_eval(node.operand))
    raise ValueError("only numbers, + - * / and parentheses")


def calculate(expression: str) -> str:
    """Evaluate an arithmetic expression with + - * / and parentheses."""
    text = expression.replace("$", "").replace(",", "").replace("x", "*").replace("×", "*")
    if len(text) > 200:
        return "error: expression too long"
    try:
        value = _eval(ast.parse(text, mode="eval"))
    except (ValueError, SyntaxError, ZeroDivisionError, RecursionError) as e:
        return f"error: {e}"
    return f"{round(value * 1e6) / 1e6:g}"


async def run_once(args, run):
    client = OpenAIChatCompletionClient(
        model=args.model,
        base_url=args.base_url,
        api_key="unused",
        temperature=0.0,
        max_tokens=args.max_tokens,
        model_info=ModelInfo(
            vision=False,
            function_calling=True,
            json_output=False,
            family="unknown",
            structured_output=False,
        ),
    )
    planner = AssistantAgent(
        "planner",
        client,
        system_message="You are the planner of a team of three. Break the task into short "
        "numbered steps and say who does what. Answer in under 60 words.",
    )
    calculator = AssistantAgent(
        "calculator",
        client,
        tools=[calculate],
        reflect_on_tool_use=True,
        max_tool_iterations=1,
        system_message="You are the calculator agent. When a number must be computed, call the "
        "calculate tool, then state the result in one sentence.",
    )
    reviewer = AssistantAgent(
        "reviewer",
        client,
        system_message="You are the reviewer. Check the team's figures and reasoning in under 60 "
        "words; say APPROVE when everything is right.",
    )
    team = RoundRobinGroupChat(
        [planner, calculator, reviewer],
        termination_condition=MaxMessageTermination(args.messages + 1),
    )
    task = (
        f"[{args.tag}-{run}] A shop sells pencils at 3 for $1.20 and notebooks at $2.75 each. "
        "Plan buying 24 pencils and 5 notebooks, compute the total cost and check it."
    )
    start = time.perf_counter()
    result = await team.run(task=task)
    wall = time.perf_counter() - start
    await client.close()
    prompt = completion = 0
    for m in result.messages:
        usage = getattr(m, "models_usage", None)
        if usage is not None:
            prompt += usage.prompt_tokens
            completion += usage.completion_tokens
    return {
        "wall_s": wall,
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "sources": [m.source for m in result.messages],
        "stop_reason": result.stop_reason,
    }


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--base-url", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--messages", type=int, default=12)
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--tag", default="autogen")
    args = p.parse_args()
    for run in range(args.runs):
        print(json.dumps(await run_once(args, run)), flush=True)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
