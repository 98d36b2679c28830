"""aiohttp's private attributes: touched in `web/aiohttp_internals.py` only, and checked there against the installed
aiohttp, which is refused with one line when it lacks one."""

from __future__ import annotations

import ast
import inspect
import tomllib
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from packaging.requirements import Requirement

from glimpse.web import aiohttp_internals, connections
from glimpse.web.aiohttp_internals import CHECKED, INTERNALS, REQUIREMENT, UnsupportedAiohttp, check, missing
from tests.paths import ROOT

PACKAGE = ROOT / "service" / "glimpse"
# The aiohttp internals the code base relied on before they were gathered in aiohttp_internals.py, and those it relies
# on now: no other module names them.
PRIVATE_NAMES = {internal.name for internal in INTERNALS} | {"_reading_paused", "_buffer_paused", "_kwargs"}


def test_the_installed_aiohttp_has_every_internal() -> None:
    assert missing() == []
    check()


def test_an_aiohttp_lacking_one_is_refused_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(RequestHandler, "_request_in_progress")
    monkeypatch.setattr(aiohttp, "__version__", "3.15.0")
    with pytest.raises(UnsupportedAiohttp) as refused:
        check()
    assert str(refused.value) == (
        "aiohttp 3.15.0 lacks RequestHandler._request_in_progress, which Glimpse's connection guard reads (checked on "
        "aiohttp 3.14.4 and 3.14.5): install a checked version (aiohttp>=3.14.4,<3.15)")


def test_every_missing_one_is_named_on_the_same_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(RequestHandler, "_request_handler")
    monkeypatch.delattr(web.BaseSite, "_server")
    with pytest.raises(UnsupportedAiohttp) as refused:
        check()
    message = str(refused.value)
    assert "\n" not in message
    assert (f"aiohttp {aiohttp.__version__} lacks RequestHandler._request_handler, which Glimpse's connection guard "
            "replaces; BaseSite._server, which Glimpse's listener sets (checked on") in message


def test_the_checked_releases_are_those_pyproject_allows() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert REQUIREMENT in project["optional-dependencies"]["proxy"]
    assert all(Requirement(REQUIREMENT).specifier.contains(version) for version in CHECKED)


def test_only_aiohttp_internals_names_them() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == Path(aiohttp_internals.__file__):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in PRIVATE_NAMES:
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno} .{node.attr}")
    assert not offenders, offenders


@pytest.mark.parametrize("subclass", [connections.GuardedConnection, connections.GuardedSite])
def test_the_subclasses_of_aiohttp_classes_touch_only_their_own_attributes(subclass: type) -> None:
    """What they inherit from aiohttp is reached through its public API or aiohttp_internals, never `self._…`."""
    own = set(vars(subclass))  # its slots and methods
    touched = {node.attr for node in ast.walk(ast.parse(inspect.getsource(subclass)))
               if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self"
               and node.attr.startswith("_") and not node.attr.startswith("__")}
    assert touched <= own, touched - own
