"""spec.pod: the proxy's pods fitted to a cluster (scheduling, labels and annotations, a ServiceAccount of their own,
extra env, envFrom and volumes, security contexts), merged over the operator's defaults, checked, and rendered.

What the CRD and the operator refuse is in tests/delivery/test_crd_validation.py (the same cases for both); the
chart's standalone proxy renders the same pod for the same settings (tests/delivery/test_proxy_parity.py)."""

from __future__ import annotations

import copy
import re
from typing import Any

import kopf
import kubernetes_validate
import pytest

from glimpse_operator.pod_settings import merged, with_pod_defaults
from glimpse_operator.render import (
    CONTAINER_SECURITY_CONTEXT,
    FALLBACK_KEY_ENV,
    OPERATOR_ENV,
    POD_SECURITY_CONTEXT,
    labels,
    render_proxy,
    selector,
)
from glimpse_operator.spec import InvalidSpec, with_defaults
from tests import restricted_v2
from tests.fakes.elevenlabs_api import FakeElevenLabs
from tests.fakes.kubernetes_api import FakeKubernetes
from tests.operator.support import (
    FITTED_POD,
    MATRIX,
    conditions,
    current,
    event_reasons,
    new_memo,
    run_reconcile,
    stored,
    voice_agent,
)

SECRETS = {"customLlmKey": "k" * 43, "signingSecret": "s" * 43}
PROXY_IMAGE = "registry.test/glimpse/proxy:1.2.3"
K8S_VERSION = "1.30.0"
DEPLOYMENT = "/apis/apps/v1/namespaces/voice/deployments/glimpse-museum-guide"
SERVICE_ACCOUNT = "/api/v1/namespaces/voice/serviceaccounts/glimpse-museum-guide"


def rendered(body: dict[str, Any], defaults: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    spec = with_pod_defaults(with_defaults(body["spec"]), defaults or {})
    return {o["kind"]: o for o in render_proxy(body, spec, "agent_1", SECRETS, PROXY_IMAGE, "0123456789abcdef")}


def pod_of(objects: dict[str, dict[str, Any]]) -> dict[str, Any]:
    template: dict[str, Any] = objects["Deployment"]["spec"]["template"]
    return template


def test_without_spec_pod_the_pod_is_as_it_was() -> None:
    """No field of spec.pod set: no scheduling field, no ServiceAccount (the namespace's default one runs the pods),
    the safe security contexts alone."""
    objects = rendered(voice_agent())
    template = pod_of(objects)
    pod = template["spec"]
    assert set(pod) == {"automountServiceAccountToken", "enableServiceLinks", "terminationGracePeriodSeconds",
                        "securityContext", "containers", "volumes"}
    assert pod["securityContext"] == POD_SECURITY_CONTEXT
    assert pod["containers"][0]["securityContext"] == CONTAINER_SECURITY_CONTEXT
    assert template["metadata"]["labels"] == labels("museum-guide")
    assert set(template["metadata"]["annotations"]) == {"glimpse.dev/config-hash", "glimpse.dev/secrets-hash"}
    assert "ServiceAccount" not in objects


def test_every_field_reaches_the_pod() -> None:
    objects = rendered(voice_agent(pod=FITTED_POD))
    template = pod_of(objects)
    pod, [container] = template["spec"], template["spec"]["containers"]
    for field in ("nodeSelector", "tolerations", "affinity", "priorityClassName"):
        assert pod[field] == FITTED_POD[field]
    # a constraint without a labelSelector spreads this VoiceAgent's pods (the Deployment's own selector)
    [constraint] = pod["topologySpreadConstraints"]
    assert constraint == {**FITTED_POD["topologySpreadConstraints"][0],
                          "labelSelector": {"matchLabels": selector("museum-guide")}}
    assert constraint["labelSelector"]["matchLabels"] == objects["Deployment"]["spec"]["selector"]["matchLabels"]
    assert template["metadata"]["labels"] == {**FITTED_POD["labels"], **labels("museum-guide")}
    annotations = template["metadata"]["annotations"]
    assert annotations.items() >= FITTED_POD["annotations"].items() and "glimpse.dev/config-hash" in annotations
    # the operator's own variables, then the spec's; the spec's sources, then its ConfigMap (the later envFrom source
    # wins a shared key: none of the spec's replaces the operator's settings); its volumes, then spec's
    names = [e["name"] for e in container["env"]]
    assert names[-len(FITTED_POD["env"]):] == [e["name"] for e in FITTED_POD["env"]]
    assert set(names[:-len(FITTED_POD["env"])]) <= OPERATOR_ENV
    assert container["envFrom"] == [*FITTED_POD["envFrom"], {"configMapRef": {"name": "glimpse-museum-guide"}}]
    assert pod["volumes"][-1] == FITTED_POD["volumes"][0] and container["volumeMounts"][-1] == \
        FITTED_POD["volumeMounts"][0]
    assert pod["securityContext"] == {**POD_SECURITY_CONTEXT, **FITTED_POD["securityContext"]}
    assert container["securityContext"] == {**CONTAINER_SECURITY_CONTEXT, **FITTED_POD["containerSecurityContext"]}
    assert restricted_v2.violations(pod) == []
    for obj in objects.values():
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


def test_the_service_account_is_the_voice_agents_own_and_mounts_no_token() -> None:
    """glimpse-<name>, owned by the VoiceAgent (garbage-collected with it), with the spec's annotations (the cloud
    identity it maps to); neither it nor the pods mount an API token: the proxy never calls the Kubernetes API."""
    objects = rendered(voice_agent(pod=FITTED_POD))
    account = objects["ServiceAccount"]
    assert account["metadata"]["name"] == "glimpse-museum-guide" == pod_of(objects)["spec"]["serviceAccountName"]
    assert account["metadata"]["annotations"] == FITTED_POD["serviceAccount"]["annotations"]
    assert account["metadata"]["ownerReferences"][0]["uid"] == voice_agent()["metadata"]["uid"]
    assert account["metadata"]["labels"] == labels("museum-guide")
    assert account["automountServiceAccountToken"] is False
    assert pod_of(objects)["spec"]["automountServiceAccountToken"] is False
    plain = rendered(voice_agent(pod__serviceAccount={"create": True}))["ServiceAccount"]
    assert "annotations" not in plain["metadata"]
    assert "ServiceAccount" not in rendered(voice_agent(pod__serviceAccount={"create": False,
                                                                             "annotations": {"a": "b"}}))


TOKEN_SOURCE = {"serviceAccountToken": {"audience": "sts.amazonaws.com", "expirationSeconds": 3600, "path": "t"}}


@pytest.mark.parametrize("where", ["spec", "defaults"])
def test_no_volume_projects_a_service_account_token(where: str) -> None:
    """A projected token (any audience: the API's, or STS with AWS_ROLE_ARN in spec.pod.env) would give code the
    VoiceAgent's author runs what the pods' account is trusted for; IRSA and Workload Identity inject their own. A
    projected volume of a ConfigMap, a Secret or the downward API stays allowed."""
    volume = {"name": "token", "projected": {"sources": [{"configMap": {"name": "ca"}}, TOKEN_SOURCE]}}
    spec = with_defaults(voice_agent(**({"pod__volumes": [volume]} if where == "spec" else {}))["spec"])
    message = (r"^spec\.pod\.volumes\[0\]\.projected\.sources\[1\]: a serviceAccountToken source is not allowed"
               if where == "spec" else r"volumes\[0\]\.projected\.sources\[1\]: a serviceAccountToken source")
    with pytest.raises(InvalidSpec, match=message):
        with_pod_defaults(spec, {"volumes": [volume]} if where == "defaults" else {})
    allowed = {"name": "bundle", "projected": {"sources": [{"configMap": {"name": "ca"}}, {"secret": {"name": "c"}}]}}
    spec = with_defaults(voice_agent(pod__volumes=[allowed])["spec"])
    assert with_pod_defaults(spec, {})["pod"]["volumes"] == [allowed]


@pytest.mark.parametrize("key", ["container.apparmor.security.beta.kubernetes.io/proxy",
                                 "seccomp.security.alpha.kubernetes.io/pod",
                                 "container.seccomp.security.alpha.kubernetes.io/proxy"])
def test_no_annotation_loosens_apparmor_or_seccomp(key: str) -> None:
    """The restricted Pod Security Standard refuses these only where a namespace enforces it; the operator always
    does, in a VoiceAgent and in its defaults. Other annotations (a mesh's, a scraper's) stay the author's."""
    spec = with_defaults(voice_agent(pod__annotations={key: "unconfined", "team": "voice"})["spec"])
    with pytest.raises(InvalidSpec, match=rf"^spec\.pod\.annotations: {re.escape(key)}: AppArmor and legacy seccomp"):
        with_pod_defaults(spec, {})
    with pytest.raises(InvalidSpec, match=r"AppArmor and legacy seccomp annotations are not allowed"):
        with_pod_defaults(with_defaults(voice_agent()["spec"]), {"annotations": {key: "unconfined"}})
    spec = with_defaults(voice_agent(pod__annotations={"sidecar.istio.io/inject": "true"})["spec"])
    assert with_pod_defaults(spec, {})["pod"]["annotations"] == {"sidecar.istio.io/inject": "true"}


def test_a_security_context_is_merged_over_the_safe_defaults_key_by_key() -> None:
    """IDs pinned, as a cluster without OpenShift's ranges may want: the safe defaults stay beside them (runAsNonRoot,
    seccomp, no escalation, every capability dropped); restricted-v2 then refuses the pinned IDs alone, which is why
    none is pinned by default."""
    body = voice_agent(pod__securityContext={"runAsUser": 10001, "fsGroup": 10001},
                       pod__containerSecurityContext={"readOnlyRootFilesystem": False})
    pod = pod_of(rendered(body))["spec"]
    assert pod["securityContext"] == {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"},
                                      "runAsUser": 10001, "fsGroup": 10001}
    assert pod["containers"][0]["securityContext"] == {"allowPrivilegeEscalation": False,
                                                       "readOnlyRootFilesystem": False,
                                                       "capabilities": {"drop": ["ALL"]}}
    assert [v.split(":")[0] for v in restricted_v2.violations(pod)] == ["pod fixes runAsUser 10001",
                                                                        "pod fixes fsGroup 10001"]


def test_a_topology_constraint_with_its_own_selector_keeps_it() -> None:
    own = {"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "DoNotSchedule",
           "labelSelector": {"matchLabels": {"team": "voice"}}}
    assert pod_of(rendered(voice_agent(pod__topologySpreadConstraints=[own])))["spec"][
        "topologySpreadConstraints"] == [own]


# The operator's defaults (GLIMPSE_PROXY_POD_DEFAULTS, the chart's operator.proxyDefaults.pod), as a platform team sets
# them for every proxy
DEFAULTS: dict[str, Any] = {
    "nodeSelector": {"pool": "general", "kubernetes.io/os": "linux"},
    "tolerations": [{"key": "spot", "operator": "Exists", "effect": "NoSchedule"}],
    "affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": []},
                 "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": []}},
    "priorityClassName": "standard",
    "labels": {"team": "platform", "tier": "voice"},
    "annotations": {"a": "1"},
    "serviceAccount": {"create": True, "annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/glimpse"}},
    "env": [{"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": "http://otel:4318"},
            {"name": "AWS_REGION", "value": "eu-west-1"}],
    "envFrom": [{"configMapRef": {"name": "platform"}}],
    "volumes": [{"name": "ca", "configMap": {"name": "corp-ca"}}],
    "volumeMounts": [{"name": "ca", "mountPath": "/etc/corp-ca", "readOnly": True}],
    "securityContext": {"supplementalGroups": [4242]},
    "containerSecurityContext": {"readOnlyRootFilesystem": True},
}


def test_a_voice_agents_fields_override_the_operators_defaults() -> None:
    """Maps key by key (each value whole), env and volumes by name, volumeMounts by mountPath; tolerations, envFrom
    and the rest replaced when the VoiceAgent gives them, kept when it does not."""
    own = {"nodeSelector": {"pool": "voice"}, "tolerations": [],
           "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
               {"matchExpressions": [{"key": "gpu", "operator": "DoesNotExist"}]}]}}},
           "labels": {"team": "voice"}, "serviceAccount": {"create": False},
           "env": [{"name": "AWS_REGION", "value": "us-east-1"}, {"name": "GLIMPSE_LOG_LEVEL", "value": "DEBUG"}],
           "volumes": [{"name": "ca", "secret": {"secretName": "voice-ca"}}],
           "volumeMounts": [{"name": "ca", "mountPath": "/etc/corp-ca", "readOnly": False}],
           "securityContext": {"runAsUser": 10001}}
    pod = merged(DEFAULTS, own)
    assert pod["nodeSelector"] == {"pool": "voice", "kubernetes.io/os": "linux"}
    assert pod["tolerations"] == [] and pod["envFrom"] == DEFAULTS["envFrom"]
    assert pod["affinity"] == {**own["affinity"], "podAntiAffinity": DEFAULTS["affinity"]["podAntiAffinity"]}
    assert pod["labels"] == {"team": "voice", "tier": "voice"} and pod["priorityClassName"] == "standard"
    assert pod["serviceAccount"] == {"create": False, "annotations": DEFAULTS["serviceAccount"]["annotations"]}
    assert pod["env"] == [DEFAULTS["env"][0], *own["env"]]
    assert pod["volumes"] == own["volumes"] and pod["volumeMounts"] == own["volumeMounts"]
    assert pod["securityContext"] == {"supplementalGroups": [4242], "runAsUser": 10001}
    assert DEFAULTS["env"][1]["value"] == "eu-west-1"  # the defaults themselves untouched

    objects = rendered(voice_agent(pod=own), DEFAULTS)
    assert "ServiceAccount" not in objects and "serviceAccountName" not in pod_of(objects)["spec"]
    assert pod_of(rendered(voice_agent(), DEFAULTS))["spec"]["serviceAccountName"] == "glimpse-museum-guide"


def test_a_voice_agent_may_mount_a_default_volume_but_not_a_missing_one() -> None:
    spec = with_defaults(voice_agent(pod__volumeMounts=[{"name": "ca", "mountPath": "/ca"}])["spec"])
    assert with_pod_defaults(spec, {"volumes": DEFAULTS["volumes"]})["pod"]["volumeMounts"] == [
        {"name": "ca", "mountPath": "/ca"}]
    with pytest.raises(InvalidSpec, match=r"^spec\.pod\.volumeMounts: ca is not a volume of spec\.pod\.volumes$"):
        with_pod_defaults(spec, {})


def test_the_operators_variables_are_all_it_sets() -> None:
    """OPERATOR_ENV (which spec.pod.env may not set, nor the CRD let through) holds every variable the operator gives a
    proxy, whatever the spec: the ConfigMap's and the container's own."""
    fallback = {"name": "g", "provider": "gemini", "model": "gemini-2.5-flash", "apiKeySecretRef": {"name": "g"}}
    specs = [voice_agent(**changes) for changes in MATRIX.values()] + [
        voice_agent(llm__fallbacks=[fallback, {**fallback, "name": "h"}], images__storage="s3://bucket",
                    images__s3EndpointUrl="http://minio:9000", images__s3CredentialsSecretRef={"name": "minio-keys"})]
    seen: set[str] = set()
    for body in specs:
        objects = rendered(copy.deepcopy(body))
        own_env = {e["name"] for e in body["spec"].get("pod", {}).get("env", [])}
        seen |= set(objects["ConfigMap"]["data"])
        seen |= {e["name"] for e in pod_of(objects)["spec"]["containers"][0]["env"]} - own_env
    fallback_keys = {name for name in seen if re.match(FALLBACK_KEY_ENV, name)}
    assert fallback_keys == {"GLIMPSE_FALLBACK_1_API_KEY", "GLIMPSE_FALLBACK_2_API_KEY"}
    assert seen - fallback_keys == OPERATOR_ENV


# -- the reconcile: an InvalidSpec condition, and the ServiceAccount applied -----------------------------------------

async def test_a_pod_the_operator_refuses_is_an_invalid_spec_condition(
        cluster: FakeKubernetes, elevenlabs: FakeElevenLabs, memo: kopf.Memo) -> None:
    """As a CRD older than the operator would let through (the fake API server checks no schema): nothing is applied,
    nothing made in ElevenLabs, the conditions and a Warning event name the field."""
    body = voice_agent(pod__containerSecurityContext={"privileged": True},
                       pod__volumes=[{"name": "node", "hostPath": {"path": "/var/run"}}])
    patch, error = await run_reconcile(body, memo, cluster)
    assert isinstance(error, kopf.TemporaryError)
    found = conditions(patch)
    for type_ in ("ProxyAvailable", "AgentSynced"):
        assert found[type_]["status"] == "False" and found[type_]["reason"] == "InvalidSpec"
    message = found["ProxyAvailable"]["message"]
    assert "spec.pod.containerSecurityContext.privileged: the proxy never runs privileged" in message
    assert "spec.pod.volumes[0]: a hostPath volume is not allowed" in message
    assert found["Ready"]["status"] == "False" and "InvalidSpec" in event_reasons(cluster, "Warning")
    assert cluster.applies == [] and elevenlabs.management_calls() == []


async def test_the_operators_defaults_and_the_service_account_are_applied(
        cluster: FakeKubernetes, elevenlabs: FakeElevenLabs) -> None:
    """The defaults reach every proxy; a ServiceAccount the spec asks for is applied before the Deployment, and one
    it no longer asks for is left unused (no delete right on ServiceAccounts: it goes with the VoiceAgent)."""
    memo = new_memo(cluster, elevenlabs, proxy_pod_defaults=DEFAULTS)
    body = voice_agent(pod__labels={"team": "voice"})
    _, error = await run_reconcile(body, memo, cluster)
    assert error is None
    kinds = [a.body["kind"] for a in cluster.applies]
    assert kinds.index("ServiceAccount") < kinds.index("Deployment")
    account = cluster.objects[SERVICE_ACCOUNT]
    assert account["metadata"]["annotations"] == DEFAULTS["serviceAccount"]["annotations"]
    template = cluster.objects[DEPLOYMENT]["spec"]["template"]
    assert template["spec"]["serviceAccountName"] == "glimpse-museum-guide"
    assert template["spec"]["nodeSelector"] == DEFAULTS["nodeSelector"]
    assert template["metadata"]["labels"]["team"] == "voice" and template["metadata"]["labels"]["tier"] == "voice"

    changed = current(cluster, body)
    changed["spec"]["pod"]["serviceAccount"] = {"create": False}
    _, error = await run_reconcile(stored(cluster, changed), memo, cluster)
    assert error is None
    assert "serviceAccountName" not in cluster.objects[DEPLOYMENT]["spec"]["template"]["spec"]
    assert SERVICE_ACCOUNT in cluster.objects  # unused now, and owned: deleted with the VoiceAgent


async def test_a_service_account_someone_else_made_is_never_taken_over(
        cluster: FakeKubernetes, elevenlabs: FakeElevenLabs, memo: kopf.Memo) -> None:
    """glimpse-<name> made by someone else (Terraform, say): no conflict while the spec asks for no account, an
    ObjectConflict naming it once it does (the operator never adopts an identity it did not make)."""
    theirs = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {
        "name": "glimpse-museum-guide", "namespace": "voice",
        "annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/theirs"}}}
    cluster.put(SERVICE_ACCOUNT, theirs)
    body = voice_agent()
    _, error = await run_reconcile(body, memo, cluster)
    assert error is None and "serviceAccountName" not in cluster.objects[DEPLOYMENT]["spec"]["template"]["spec"]

    changed = current(cluster, body)
    changed["spec"]["pod"] = {"serviceAccount": {"create": True}}
    patch, error = await run_reconcile(stored(cluster, changed), memo, cluster)
    assert isinstance(error, kopf.TemporaryError)
    found = conditions(patch)["ProxyAvailable"]
    assert found["reason"] == "ObjectConflict"
    assert "ServiceAccount voice/glimpse-museum-guide (made by someone else)" in found["message"]
    assert cluster.objects[SERVICE_ACCOUNT]["metadata"]["annotations"] == theirs["metadata"]["annotations"]
    assert "serviceAccountName" not in cluster.objects[DEPLOYMENT]["spec"]["template"]["spec"]
