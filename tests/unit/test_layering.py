"""The proxy's layering (docs/architecture.md): imports run one way, from the HTTP layer down to the
foundations, and only the HTTP layer knows aiohttp's server side."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "service" / "glimpse"

# Lowest first. A module may import modules of its own layer or below, never above.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("foundations", ("glimpse", "glimpse.config", "glimpse.errors", "glimpse.auth", "glimpse.drain",
                     "glimpse.observability", "glimpse.elevenlabs.errors", "glimpse.elevenlabs")),
    ("backends", ("glimpse.conversation.ids", "glimpse.conversation.store", "glimpse.conversation.memory",
                  "glimpse.conversation.redis", "glimpse.images", "glimpse.upstream", "glimpse.elevenlabs.client")),
    ("services", ("glimpse.conversation.injection", "glimpse.conversation.sessions", "glimpse.images.uploads",
                  "glimpse.chat")),
    ("http", ("glimpse.web", "glimpse.resources", "glimpse.app", "glimpse.server", "glimpse.cli",
              "glimpse.__main__")),
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int:
    """The layer of the longest prefix that names `module`."""
    best, index = -1, -1
    for position, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, index = len(prefix), position
    assert index >= 0, f"{module} is in no layer: add it to LAYERS"
    return index


def imports_of(path: Path, module: str) -> set[str]:
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolved against the importing module's package
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                found.add(".".join(base + ([node.module] if node.module else [])))
            elif node.module:
                found.add(node.module)
                if node.module == "aiohttp":  # `from aiohttp import web` imports aiohttp.web
                    found |= {f"aiohttp.{alias.name}" for alias in node.names}
    return found


def modules() -> list[tuple[Path, str]]:
    return [(path, module_name(path)) for path in sorted(PACKAGE.rglob("*.py"))]


def test_imports_run_down_the_layers_only() -> None:
    upward = []
    for path, module in modules():
        mine = layer_of(module)
        for imported in imports_of(path, module):
            ours = imported == "glimpse" or imported.startswith("glimpse.")
            if ours and layer_of(imported) > mine:
                upward.append(f"{module} ({LAYERS[mine][0]}) imports {imported} ({LAYERS[layer_of(imported)][0]})")
    assert not upward, "\n".join(upward)


def test_only_the_http_layer_knows_the_aiohttp_server() -> None:
    http = len(LAYERS) - 1
    offenders = [module for path, module in modules() if layer_of(module) < http
                 and {"aiohttp.web", "aiohttp.web_request", "aiohttp.web_response"} & imports_of(path, module)]
    assert not offenders, offenders


def test_every_module_is_placed() -> None:
    for _, module in modules():
        layer_of(module)
