"""Dumps AutoGen teams with the real `autogen-agentchat` package's `dump_component()`.

Usage: python dump_autogen_team.py OUT_DIR

Writes round_robin.json (two assistants, MaxMessageTermination | TextMentionTermination) and
selector.json (a SelectorGroupChat with a selector prompt). The model client points at a local
OpenAI-compatible server, so agentgen runs the agents on its configured backend.
"""

import pathlib
import sys

from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.conditions import MaxMessageTermination, TextMentionTermination
from autogen_agentchat.teams import RoundRobinGroupChat, SelectorGroupChat
from autogen_ext.models.openai import OpenAIChatCompletionClient


def client() -> OpenAIChatCompletionClient:
    return OpenAIChatCompletionClient(
        model="qwen2.5-coder-0.5b-instruct",
        base_url="http://127.0.0.1:8080/v1",
        api_key="not-needed",
        model_info={
            "vision": False,
            "function_calling": True,
            "json_output": False,
            "family": "unknown",
            "structured_output": False,
        },
    )


def main() -> None:
    out = pathlib.Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    writer = AssistantAgent(
        "writer",
        model_client=client(),
        description="Writes a one-line answer.",
        system_message="You are the writer. Answer in one short line.",
    )
    critic = AssistantAgent(
        "critic",
        model_client=client(),
        description="Approves or asks for one change.",
        system_message="You are the critic. Reply APPROVE if the answer is fine.",
    )
    stop = MaxMessageTermination(3) | TextMentionTermination("APPROVE")
    team = RoundRobinGroupChat([writer, critic], termination_condition=stop)
    (out / "round_robin.json").write_text(team.dump_component().model_dump_json(indent=2))

    selector = SelectorGroupChat(
        [writer, critic],
        model_client=client(),
        termination_condition=MaxMessageTermination(4) & TextMentionTermination("APPROVE"),
        selector_prompt="Pick one of {participants}.\n{roles}\n{history}",
        allow_repeated_speaker=True,
    )
    (out / "selector.json").write_text(selector.dump_component().model_dump_json(indent=2))


if __name__ == "__main__":
    main()
