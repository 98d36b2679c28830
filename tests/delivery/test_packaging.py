"""Each program's extra installs what it imports and nothing it does not: `glimpse[proxy]` for the proxy
image, `glimpse[operator]` for the operator image (`import openai` alone is 24 MB of RSS the operator does
not need; kopf and kubernetes are dead weight in the proxy)."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import tomllib
from functools import cache
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.paths import ROOT

PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

OURS = ("glimpse", "glimpse_operator")
IMPORT_EVERYTHING = """
import importlib, json, pkgutil, sys
package = importlib.import_module(sys.argv[1])
for module in pkgutil.walk_packages(package.__path__, sys.argv[1] + "."):
    if not module.name.endswith(".__main__"):  # running it would start the program
        importlib.import_module(module.name)
ours = [m.__file__ for name, m in sys.modules.items()
        if name.partition(".")[0] in sys.argv[2:] and getattr(m, "__file__", None)]
print(json.dumps({"loaded": sorted({name.partition(".")[0] for name in sys.modules}), "ours": ours}))
"""


def load_everything(package: str) -> tuple[set[str], set[str]]:
    """Import all of `package` in a fresh interpreter: every top-level module that got loaded, and the
    top-level modules our own loaded files import themselves (libraries' optional imports left out)."""
    result = subprocess.run([sys.executable, "-c", IMPORT_EVERYTHING, package, *OURS], capture_output=True, text=True,
                            check=True, timeout=120)
    report = json.loads(result.stdout)
    direct: set[str] = set()
    for file in report["ours"]:
        tree = ast.parse(Path(file).read_text())
        # `if TYPE_CHECKING:` imports (type stubs such as mypy_boto3_s3) never run: the test extra installs them
        typing_only = {id(child) for node in ast.walk(tree)
                       if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING"
                       for statement in node.body for child in ast.walk(statement)}
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            if isinstance(node, ast.Import):
                direct |= {alias.name.partition(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                direct.add(node.module.partition(".")[0])
    return set(report["loaded"]), direct


def _name(requirement: str) -> str:
    return re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def listed(extra: str) -> set[str]:
    """The distributions the project names for `extra` (its base dependencies included)."""
    return {_name(r) for r in PROJECT["dependencies"] + PROJECT["optional-dependencies"][extra]}


@cache
def _requirements_of(distribution: str, extras: frozenset[str]) -> list[str]:
    found = []
    for text in metadata.requires(distribution) or []:
        requirement = Requirement(text)
        marker = requirement.marker
        if marker is None or any(marker.evaluate({"extra": extra}) for extra in extras or {""}):
            found.append(text)
    return found


def installed_closure(extra: str) -> set[str]:
    """The distributions `pip install glimpse[extra]` brings in, following requirements with their extras."""
    seen: set[str] = set()
    todo = [Requirement(r) for r in PROJECT["dependencies"] + PROJECT["optional-dependencies"][extra]]
    while todo:
        requirement = todo.pop()
        name = requirement.name.lower().replace("_", "-")
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        if name in seen:
            continue
        seen.add(name)
        try:
            todo += [Requirement(r) for r in _requirements_of(name, frozenset(requirement.extras))]
        except metadata.PackageNotFoundError:
            continue
    return seen


def third_party(modules: set[str]) -> dict[str, set[str]]:
    """Top-level module -> the installed distributions that provide it (standard library and ours left out)."""
    providers = metadata.packages_distributions()
    return {module: {d.lower().replace("_", "-") for d in providers[module]} for module in modules
            if module in providers and module not in OURS}


@pytest.mark.parametrize(("package", "extra", "never"), [
    ("glimpse", "proxy", {"kopf", "kubernetes"}),
    # prometheus_client is the operator's own too (glimpse_operator/metrics.py), in its extra
    ("glimpse_operator", "operator", {"openai", "PIL", "redis", "orjson", "opentelemetry"}),
])
def test_each_program_installs_what_it_imports_and_nothing_else(package: str, extra: str, never: set[str]) -> None:
    loaded, direct = load_everything(package)
    assert not never & loaded, f"importing {package} loads {never & loaded}"
    imported = third_party(direct)
    closure = installed_closure(extra)
    missing = {module for module, providers in imported.items() if not providers & closure}
    assert not missing, f"{package} imports {missing}, which glimpse[{extra}] does not install"
    providing = set().union(*imported.values())
    unused = listed(extra) - providing
    assert not unused, f"glimpse[{extra}] installs {unused}, which {package} never imports"
