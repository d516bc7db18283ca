"""An MCP server for the agentgen-mcp tests, written with the official `mcp` package.

    python geo_server.py stdio      # MCP over stdin/stdout
    python geo_server.py http       # streamable HTTP on 127.0.0.1, a free port, path /mcp;
                                    # prints "PORT <n>" once it listens
"""

import asyncio
import os
import socket
import sys

from mcp.server.mcpserver import MCPServer

mcp = MCPServer("geo")

CAPITALS = {"france": "Paris", "japan": "Tokyo", "kenya": "Nairobi", "peru": "Lima"}


@mcp.tool()
def capital_of(country: str) -> str:
    """Returns the capital city of a country."""
    return CAPITALS.get(country.strip().lower(), f"unknown country: {country}")


@mcp.tool()
async def wait_seconds(seconds: float) -> str:
    """Waits this many seconds, then says so."""
    await asyncio.sleep(seconds)
    return f"waited {seconds} s"


@mcp.tool()
def crash() -> str:
    """Ends the server process at once, mid-call."""
    os._exit(3)


@mcp.tool()
def fail(reason: str) -> str:
    """Raises an error with this reason."""
    raise ValueError(reason)


def serve_http() -> None:
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    app = mcp.streamable_http_app()
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    asyncio.run(server.serve(sockets=[sock]))


if __name__ == "__main__":
    if sys.argv[1:] == ["http"]:
        serve_http()
    else:
        mcp.run("stdio")
