"""Where things are, for tests in any folder: the repository's root, and the vendors' schemas beside it."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The steering repository's shared/ folder, next to this clone (CI lays a copy there).
VENDOR_SPEC = ROOT.parent / "shared" / "vendor-spec"
