"""The vendors' own request/response schemas (`shared/vendor-spec/`, JSON Schema 2020-12), for the fakes:
a fake accepts only what the vendor's schema allows, as the real service does."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator

from tests.paths import VENDOR_SPEC


@cache
def _document(vendor: str) -> dict[str, Any]:
    path = VENDOR_SPEC / f"{vendor}.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the fakes validate against the vendors' schemas in shared/")
    document: dict[str, Any] = json.loads(path.read_text())
    return document


@cache
def validator(vendor: str, definition: str) -> Draft202012Validator:
    """A validator for one of the vendor's `$defs` (e.g. `openai`, `CreateResponse`)."""
    document = _document(vendor)
    return Draft202012Validator({"$defs": document["$defs"], "$ref": f"#/$defs/{definition}"})


@cache
def known_fields(vendor: str, definition: str) -> frozenset[str]:
    """Every top-level property a definition allows, through its allOf/anyOf/$ref parts."""
    defs = _document(vendor)["$defs"]

    def walk(schema: dict[str, Any]) -> set[str]:
        if "$ref" in schema:
            return walk(defs[schema["$ref"].rsplit("/", 1)[-1]])
        found = set(schema.get("properties", {}))
        for key in ("allOf", "anyOf", "oneOf"):
            for part in schema.get(key, []):
                found |= walk(part)
        return found

    return frozenset(walk(defs[definition]))
