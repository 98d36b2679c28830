"""Render charts/glimpse with its default values into manifests/install.yaml (plain `kubectl apply -f`).

Usage: python tools/render_install.py [--check]. With --check, exit 1 when the file is out of date.
The Helm templates are rendered in-process by the helm-python-sdk (Helm's own Go library), offline.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "charts" / "glimpse"
TARGET = ROOT / "manifests" / "install.yaml"
NAMESPACE = "glimpse-system"
RELEASE = "glimpse"
HEADER = (f"# Generated from charts/glimpse by tools/render_install.py (make manifests); do not edit.\n"
          f"# kubectl apply --server-side -f manifests/install.yaml  installs the CRD and the operator into "
          f"{NAMESPACE}.\n")


def render_chart(values: dict | None = None, namespace: str = NAMESPACE, source: Path = CHART) -> list[dict]:
    """Every object the chart renders (crds/ first, then the templates: the VoiceAgent CRD among them), parsed.
    `source`: the chart's directory, or a packaged chart (.tgz)."""
    import helm_python

    helm_python.disable_logging()
    chart = helm_python.Chart.load(str(source))
    try:
        crds = [yaml.safe_load(crd["data"]) for crd in chart.crds]
        rendered = chart.render(values or {}, name=RELEASE, namespace=namespace, is_install=True)
    finally:
        chart.close()
    objects = []
    for path in sorted(rendered):
        if path.endswith("NOTES.txt"):
            continue
        objects += [doc for doc in yaml.safe_load_all(rendered[path]) if doc]
    return crds + objects


def install_yaml() -> str:
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE, "labels": {
        "app.kubernetes.io/name": "glimpse", "pod-security.kubernetes.io/enforce": "restricted"}}}
    objects = render_chart()
    crds = [o for o in objects if o["kind"] == "CustomResourceDefinition"]
    rest = [o for o in objects if o["kind"] != "CustomResourceDefinition"]
    documents = [yaml.safe_dump(o, sort_keys=False, width=120) for o in [*crds, namespace, *rest]]
    return HEADER + "---\n" + "---\n".join(documents)


def main(argv: list[str]) -> int:
    text = install_yaml()
    if "--check" in argv:
        if not TARGET.exists() or TARGET.read_text() != text:
            print("manifests/install.yaml is out of date: run make manifests", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text)
    print(f"wrote {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
