"""Schemas that come as npm packages (`@kubernetes-models/*`), each in a folder of tests/delivery/ with its own
package-lock.json and a `validate.mjs` that reads objects as JSON on stdin and prints, for each, what its schema
refuses ("<path> <message>"; empty: valid). `make test` installs each folder with `npm ci`."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from tests.paths import ROOT


def installed_marker(directory: Path) -> Path:
    return directory / "node_modules" / ".glimpse-installed"


def validate(directory: Path, objects: list[dict[str, Any]], what: str) -> list[list[str]]:
    """Run `directory`'s validator on `objects`; `what` names the schemas in the failure messages."""
    marker = installed_marker(directory)
    assert marker.is_file(), f"make {marker.relative_to(ROOT)} installs {what} (npm ci)"
    node = shutil.which("node")
    assert node, f"Node.js runs {what} (the page's build needs it too)"
    result = subprocess.run([node, "validate.mjs"], input=json.dumps(objects), capture_output=True, text=True,
                            cwd=directory, timeout=60, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    verdicts: list[list[str]] = json.loads(result.stdout)
    assert len(verdicts) == len(objects)
    return verdicts
