"""The lock files (requirements/*.lock, written by `make lock` with uv) are what the images, `make run` and `make test`
(so CI) install, with --require-hashes, --no-deps and wheels only: each must be complete and current for its install
set, or an image lacks a library (no pip resolves behind the lock) or runs versions CI never tested. A lock is stale
once pyproject.toml asks for something it does not pin: then `make lock`."""

from __future__ import annotations

import re
import tomllib
from functools import cache
from importlib import metadata

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.paths import ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]
# Each lock and the extras it installs: the proxy's image and `make run`, the operator's image, and everything CI needs.
LOCKS = {"proxy": {"proxy", "otlp"}, "operator": {"operator"}, "test": {"proxy", "operator", "otlp", "test"}}
IMAGES = {"Dockerfile": "proxy", "Dockerfile.operator": "operator"}
# The only platform the locks are for: Linux, CPython 3.11 (the images' python:3.11, CI's machine).
PLATFORM = {"sys_platform": "linux", "platform_system": "Linux", "os_name": "posix", "implementation_name": "cpython",
            "platform_python_implementation": "CPython", "python_version": "3.11", "python_full_version": "3.11.11"}
# How a lock is installed: every file checked against its hash, nothing resolved, wheels only (an sdist's build
# requirements are in no lock).
LOCKED = "--require-hashes --no-deps --only-binary=:all:"
HASH = re.compile(r"--hash=sha256:[0-9a-f]{64}")


@cache
def lock(name: str) -> dict[str, tuple[Version, list[str]]]:
    """Distribution -> its pinned version and its hashes, from requirements/<name>.lock."""
    text = (ROOT / "requirements" / f"{name}.lock").read_text()
    entries: dict[str, tuple[Version, list[str]]] = {}
    for entry in re.sub(r"\\\n", " ", text).splitlines():
        entry = entry.split("#", 1)[0].strip()
        if not entry:
            continue
        requirement, *options = entry.split()
        match = re.fullmatch(r"([A-Za-z0-9._-]+)==([^\s;]+)", requirement)
        assert match, f"{name}.lock: {requirement!r} is not pinned with =="
        assert options and all(HASH.fullmatch(option) for option in options), f"{name}.lock: {requirement} unhashed"
        entries[canonicalize_name(match.group(1))] = (Version(match.group(2)), options)
    return entries


def environment(extra: str = "") -> dict[str, str]:
    return {**default_environment(), **PLATFORM, "extra": extra}


def applies(requirement: Requirement, extras: set[str]) -> bool:
    marker = requirement.marker
    return marker is None or any(marker.evaluate(environment(extra)) for extra in extras | {""})


def project_requirements(extras: set[str]) -> list[Requirement]:
    """What pyproject.toml asks for with these extras (glimpse[...] inside an extra followed), and its build backend."""
    found = [Requirement(r) for r in PYPROJECT["build-system"]["requires"] + PROJECT["dependencies"]]
    todo, seen = set(extras), set()
    while todo:
        extra = todo.pop()
        seen.add(extra)
        for text in PROJECT["optional-dependencies"][extra]:
            requirement = Requirement(text)
            if canonicalize_name(requirement.name) == PROJECT["name"]:
                todo |= requirement.extras - seen
            elif applies(requirement, set()):
                found.append(requirement)
    return found


def unmet(requirements: list[Requirement], pinned: dict[str, tuple[Version, list[str]]]) -> list[str]:
    problems = []
    for requirement in requirements:
        name = canonicalize_name(requirement.name)
        if name not in pinned:
            problems.append(f"{requirement} is not in it")
        elif not requirement.specifier.contains(pinned[name][0], prereleases=True):
            problems.append(f"{requirement} is not met by {name}=={pinned[name][0]}")
    return problems


@pytest.mark.parametrize("name", LOCKS)
def test_the_lock_pins_what_pyproject_asks_for(name: str) -> None:
    """Every requirement of the lock's extras (and of the build backend) has a hashed == pin that meets it."""
    problems = unmet(project_requirements(LOCKS[name]), lock(name))
    assert not problems, f"requirements/{name}.lock is stale, run `make lock`: " + "; ".join(problems)


@pytest.mark.parametrize("name", LOCKS)
def test_the_lock_holds_what_its_pins_need(name: str) -> None:
    """Installed with --no-deps, a lock must hold every dependency of its pins itself: checked with the metadata of
    the pins installed here at the locked version (the test venv is installed from test.lock)."""
    pinned = lock(name)
    problems, checked = [], 0
    for distribution, (version, _) in pinned.items():
        try:
            if Version(metadata.version(distribution)) != version:
                continue
        except metadata.PackageNotFoundError:
            continue
        checked += 1
        needs = [r for r in map(Requirement, metadata.requires(distribution) or [])
                 if r.marker is None or r.marker.evaluate(environment())]
        problems += [f"{distribution}=={version} needs {p}" for p in unmet(needs, pinned)]
    assert checked == len(pinned), "this venv is not test.lock's: make .venv/.glimpse-test-installed"
    assert not problems, f"requirements/{name}.lock lacks dependencies, run `make lock`: " + "; ".join(problems)


@pytest.mark.parametrize("name", ["proxy", "operator"])
def test_the_images_run_the_versions_ci_tests(name: str) -> None:
    """An image's lock is a part of test.lock, at the same versions and with the same files."""
    tested = lock("test")
    assert {d: tested.get(d) for d in lock(name)} == lock(name)


@pytest.mark.parametrize("name", LOCKS)
def test_the_lock_says_where_it_comes_from(name: str) -> None:
    head = (ROOT / "requirements" / f"{name}.lock").read_text().splitlines()[:3]
    assert head[0].startswith("# Linux, CPython 3.11 only") and head[2] == "#    make lock"


@pytest.mark.parametrize(("dockerfile", "name"), IMAGES.items())
def test_the_images_install_from_their_lock_with_hashes(dockerfile: str, name: str) -> None:
    text = (ROOT / dockerfile).read_text()
    installs = re.findall(r"^RUN .*\bpip install\b.*$", text, re.MULTILINE)
    assert installs == [f"RUN /opt/glimpse/bin/pip install {LOCKED} -r requirements/{name}.lock",
                        "RUN /opt/glimpse/bin/pip install --no-deps --no-build-isolation ."]
    assert f"COPY requirements/{name}.lock ./requirements/\n" in text


def test_make_installs_from_the_locks_with_hashes() -> None:
    """`make run` and `make test` (so CI, .ci/run) install the same way as the images, Glimpse itself editable."""
    text = (ROOT / "Makefile").read_text()
    installs = [line.strip() for line in text.splitlines() if re.search(r"\bpip install\b", line)]
    assert installs == ["$(BIN)/python -m pip install --quiet --upgrade pip",
                        f"$(BIN)/pip install --quiet {LOCKED} -r requirements/$(1).lock",
                        "$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .",
                        # checkov, in a venv of its own, from its own lock
                        f"$(CHECKOV_VENV)/bin/pip install --quiet {LOCKED} -r requirements/checkov.lock"]
    for stamp, name in (("STAMP", "proxy"), ("OPERATOR_STAMP", "operator"), ("TEST_STAMP", "test")):
        assert re.search(rf"^\$\({stamp}\): pyproject.toml requirements/{name}.lock \| \$\(BIN\)/python\n"
                         rf"\t\$\(call install_locked,{name}\)$", text, re.MULTILINE), stamp
    # `make lock`: for the platform the lock files say, with hashes, wheels only (as they are installed)
    assert "uv pip compile --quiet --generate-hashes --python-version 3.11 --python-platform linux \\\n" \
           "\t--only-binary :all: " in text
    assert re.search(r"^test: \$\(TEST_STAMP\)", text, re.MULTILINE) and re.search(r"^run: \$\(STAMP\)", text,
                                                                                   re.MULTILINE)


def test_checkov_runs_from_its_own_lock() -> None:
    """checkov (tests/delivery/test_checkov.py) is pinned in requirements/checkov.in and installed, hashes checked,
    from requirements/checkov.lock, which holds that pin."""
    wanted = [Requirement(line) for line in (ROOT / "requirements" / "checkov.in").read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    assert [str(r.specifier) for r in wanted if r.name == "checkov"] == [f"=={lock('checkov')['checkov'][0]}"]
    assert unmet(wanted, lock("checkov")) == []
