"""The modules the import contracts let use aiohttp below the HTTP layer (pyproject.toml) use only its client side:
import-linter sees aiohttp whole, so this test names the server side they must not touch."""

from __future__ import annotations

import ast

import pytest

from tests.paths import ROOT

CLIENTS = ("upstream/http.py", "upstream/stream.py", "elevenlabs/client.py")


def server_side_uses(source: str) -> list[str]:
    """What `source` takes from aiohttp's server side (`aiohttp.web` and its `web_*` modules)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module:
            modules = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "aiohttp":
            modules = [f"aiohttp.{node.attr}"]
        else:
            continue
        found += [m for m in modules if m == "aiohttp.web" or m.startswith(("aiohttp.web.", "aiohttp.web_"))]
    return found


@pytest.mark.parametrize("module", CLIENTS)
def test_the_clients_use_only_aiohttps_client_side(module: str) -> None:
    path = ROOT / "service" / "glimpse" / module
    assert path.is_file(), f"{module} moved: update CLIENTS and pyproject.toml's aiohttp contract together"
    assert server_side_uses(path.read_text()) == []


@pytest.mark.parametrize("source", ["from aiohttp import web", "import aiohttp.web_request",
                                    "from aiohttp.web_response import Response",
                                    "import aiohttp\naiohttp.web.Response"])
def test_each_way_of_reaching_the_server_side_is_seen(source: str) -> None:
    assert server_side_uses(source)


def test_the_client_side_is_not_flagged() -> None:
    assert server_side_uses("import aiohttp\nfrom aiohttp import ClientSession\naiohttp.ClientTimeout()") == []
