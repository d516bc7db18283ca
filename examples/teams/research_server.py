"""A tiny stdio MCP server for examples/teams/magentic_research.toml (official `mcp` package).

    python3 research_server.py

One tool, `lookup(topic)`: a short fact sheet about the topic from a small built-in table, so
the example's results are the same on every machine and need no network.
"""

try:  # mcp 2.x
    from mcp.server.mcpserver import MCPServer as FastMCP
except ImportError:  # mcp 1.x
    from mcp.server.fastmcp import FastMCP

FACTS = {
    "rust": "Rust is a systems programming language; version 1.0 was released in May 2015.",
    "python": "Python is a programming language created by Guido van Rossum, first released in 1991.",
    "mcp": "The Model Context Protocol (MCP) is an open protocol that connects models to tools.",
    "autogen": "AutoGen is a framework for multi-agent applications from Microsoft.",
}

mcp = FastMCP("research")


@mcp.tool()
def lookup(topic: str) -> str:
    """Looks a topic up and returns a short fact sheet about it."""
    key = topic.strip().lower()
    for name, fact in FACTS.items():
        if name in key or key in name:
            return f"FACT: {fact}"
    return f"FACT: nothing is known about {topic!r}; known topics: {', '.join(FACTS)}."


if __name__ == "__main__":
    mcp.run("stdio")
