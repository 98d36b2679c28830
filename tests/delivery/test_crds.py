"""CRD upgrades that happen: the VoiceAgent CRD is a template (templates/crds.yaml), so `helm upgrade`, Argo CD and
Flux apply a changed CRD, where crds/ is installed once and never again; it is manifests/crd/voiceagent.yaml's own
text with the keep policy added, in the chart's directory and in the chart `helm package` makes."""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml

from tests.paths import ROOT
from tools.render_install import CHART, NAMESPACE, RELEASE, TARGET, render_chart

MANIFEST = ROOT / "manifests" / "crd" / "voiceagent.yaml"
TEMPLATE = "glimpse/templates/crds.yaml"
KEEP = {"helm.sh/resource-policy": "keep", "argocd.argoproj.io/sync-options": "Prune=false"}
# what the chart inserts under the CRD's `metadata:`; the rest of the text is the manifest's, byte for byte
INSERTED = "  annotations:\n    helm.sh/resource-policy: keep\n    argocd.argoproj.io/sync-options: Prune=false\n"
# kubectl's client-side apply (Argo CD's default) copies the object into this annotation; the API server refuses
# an object whose annotations together pass 256 KiB (apimachinery's TotalAnnotationSizeLimitB)
ANNOTATIONS_LIMIT = 262144


def templates(values: dict[str, Any] | None = None, source: Path = CHART) -> dict[str, str]:
    """The templates alone, as `helm template --skip-crds` and `helm upgrade` apply them (never crds/)."""
    helm_python.disable_logging()
    chart = helm_python.Chart.load(str(source))
    try:
        rendered: dict[str, str] = chart.render(values or {}, name=RELEASE, namespace=NAMESPACE, is_install=True)
    finally:
        chart.close()
    return rendered


def crds_in(rendered: dict[str, str]) -> list[dict[str, Any]]:
    return [doc for path, text in rendered.items() if not path.endswith("NOTES.txt")
            for doc in yaml.safe_load_all(text) if doc and doc["kind"] == "CustomResourceDefinition"]


def test_the_voiceagent_crd_is_a_template_with_the_keep_policy() -> None:
    """Without crds/ (--skip-crds, helm upgrade): the VoiceAgent CRD is there, byte-identical to
    manifests/crd/voiceagent.yaml but for the annotations, which keep it (and every VoiceAgent) on uninstall."""
    rendered = templates()
    [crd] = crds_in(rendered)
    assert crd["metadata"]["name"] == "voiceagents.glimpse.dev"
    assert crd["metadata"]["annotations"] == KEEP
    text = rendered[TEMPLATE].strip()
    assert text.count(INSERTED) == 1
    assert text.replace(INSERTED, "") == "---\n" + MANIFEST.read_text().strip()
    assert crd == {**yaml.safe_load(MANIFEST.read_text()),
                   "metadata": {"annotations": KEEP, **yaml.safe_load(MANIFEST.read_text())["metadata"]}}


def test_kopf_peering_crds_stay_in_crds_and_the_voiceagent_one_leaves_it() -> None:
    """Edited in one place, manifests/crd: crds/ links to kopf's peering CRDs (installed before the templates, which
    make a KopfPeering), files/crds to the VoiceAgent's (which the template reads: .Files cannot read templates/)."""
    crd_dir = ROOT / "manifests" / "crd"
    links = {path.relative_to(CHART).as_posix(): path
             for path in sorted(CHART.glob("crds/*.yaml")) + sorted(CHART.glob("files/crds/*.yaml"))}
    assert sorted(links) == ["crds/clusterkopfpeering.yaml", "crds/kopfpeering.yaml", "files/crds/voiceagent.yaml"]
    for link in links.values():
        assert link.is_symlink() and link.resolve() == crd_dir / link.name
    assert sorted(path.name for path in crd_dir.glob("*.yaml")) == sorted(link.name for link in links.values())


def test_crds_install_false_leaves_the_crd_out() -> None:
    """For teams who manage CRDs themselves: nothing of the CRD in the templates; kopf's peering CRDs are still in
    crds/ (`--skip-crds` leaves those out too)."""
    assert crds_in(templates({"crds": {"install": False}})) == []
    kinds = [o["metadata"]["name"] for o in render_chart({"crds": {"install": False}})
             if o["kind"] == "CustomResourceDefinition"]
    assert kinds == ["clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev"]
    with pytest.raises(helm_python.HelmError):
        render_chart({"crds": {"install": "no"}})


@pytest.mark.parametrize("values", [{}, {"crds": {"install": False}}])
def test_the_packaged_chart_renders_the_same(tmp_path: Path, values: dict[str, Any]) -> None:
    """`helm package` follows the links: the archive holds the CRDs' text as files and renders what the directory
    renders (a chart repository or an OCI registry serves the archive)."""
    archive = Path(helm_python.package(str(CHART), destination=str(tmp_path)))
    with tarfile.open(archive) as tar:
        members = {member.name: member for member in tar.getmembers()}
        for name in ("glimpse/files/crds/voiceagent.yaml", "glimpse/crds/kopfpeering.yaml"):
            assert members[name].isfile()
            extracted = tar.extractfile(members[name])
            assert extracted is not None
            assert extracted.read() == (ROOT / "manifests" / "crd" / Path(name).name).read_bytes()
    assert render_chart(values, source=archive) == render_chart(values)
    assert templates(values, source=archive) == templates(values)


def test_a_crd_file_with_annotations_of_its_own_is_refused(tmp_path: Path) -> None:
    """The chart adds the CRD's annotations itself: a file with its own would get two `annotations:` keys."""
    chart = tmp_path / "glimpse"
    shutil.copytree(CHART, chart)  # the links followed: a copy to change
    crd = yaml.safe_load(MANIFEST.read_text())
    crd["metadata"]["annotations"] = {"team": "voice"}
    (chart / "files" / "crds" / "voiceagent.yaml").write_text(yaml.safe_dump(crd))
    with pytest.raises(helm_python.HelmError, match=r"keep metadata\.annotations out of the file"):
        templates(source=chart)


def test_the_crd_fits_client_side_apply_and_install_yaml_holds_it_once() -> None:
    """kubectl apply without --server-side (Argo CD's default) stores the object in the
    last-applied-configuration annotation: the VoiceAgent CRD must fit under the 256 KiB annotation limit (else
    Argo CD needs ServerSideApply=true). install.yaml holds each CRD once."""
    [crd] = crds_in(templates())
    last_applied = json.dumps(crd, separators=(",", ":"))
    assert len(last_applied) < ANNOTATIONS_LIMIT, f"{len(last_applied)} bytes: README, Argo CD, ServerSideApply"
    installed = [doc for doc in yaml.safe_load_all(TARGET.read_text()) if doc]
    names = [doc["metadata"]["name"] for doc in installed if doc["kind"] == "CustomResourceDefinition"]
    assert sorted(names) == ["clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev", "voiceagents.glimpse.dev"]
