"""OpenShift's default SecurityContextConstraints, restricted-v2, as a check on a pod spec: what the SCC admission
would refuse, so that a render can be tested without an OpenShift cluster.

The rules follow the SCC as OpenShift ships it (openshift/cluster-kube-apiserver-operator,
bindata/bootkube/scc-manifests/0000_20_kube-apiserver-operator_00_scc-restricted-v2.yaml): no host namespaces, ports
or paths, no privileged container, no privilege escalation, ALL capabilities dropped and only NET_BIND_SERVICE added,
the runtime/default seccomp profile, the listed volume types, and the user and fsGroup drawn from the namespace's range
(`MustRunAsRange`, `MustRunAs`): a pod that names its own UID or fsGroup is refused in any namespace whose range does
not hold it, so a chart that works everywhere names none.
"""

from __future__ import annotations

from typing import Any

ALLOWED_CAPABILITIES = {"NET_BIND_SERVICE"}  # allowedCapabilities
VOLUME_TYPES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "image", "persistentVolumeClaim",
                "projected", "secret"}  # volumes
SECCOMP_PROFILES = {"RuntimeDefault"}  # seccompProfiles: runtime/default


def violations(pod: dict[str, Any]) -> list[str]:
    """What restricted-v2 refuses in a pod spec (`spec.template.spec` of a Deployment), one sentence each."""
    found = []
    for host in ("hostNetwork", "hostPID", "hostIPC"):  # allowHostNetwork, allowHostPID, allowHostIPC: false
        if pod.get(host):
            found.append(f"pod sets {host}")
    context = pod.get("securityContext") or {}
    for fixed in ("runAsUser", "fsGroup"):  # runAsUser: MustRunAsRange; fsGroup: MustRunAs (the namespace's range)
        if fixed in context:
            found.append(f"pod fixes {fixed} {context[fixed]}: the namespace's range decides")
    found += _seccomp("pod", context)
    for volume in pod.get("volumes") or []:
        kind = next(key for key in volume if key != "name")
        if kind not in VOLUME_TYPES:
            found.append(f"volume {volume['name']} is a {kind} volume")
    for container in [*pod.get("initContainers", []), *pod.get("containers", [])]:
        name, context = container["name"], container.get("securityContext") or {}
        if "runAsUser" in context:
            found.append(f"container {name} fixes runAsUser {context['runAsUser']}: the namespace's range decides")
        if context.get("privileged"):  # allowPrivilegedContainer: false
            found.append(f"container {name} is privileged")
        if context.get("allowPrivilegeEscalation") is not False:  # allowPrivilegeEscalation: false
            found.append(f"container {name} does not set allowPrivilegeEscalation: false")
        capabilities = context.get("capabilities") or {}
        if "ALL" not in (capabilities.get("drop") or []):  # requiredDropCapabilities: [ALL]
            found.append(f"container {name} does not drop ALL capabilities")
        if extra := set(capabilities.get("add") or []) - ALLOWED_CAPABILITIES:
            found.append(f"container {name} adds {sorted(extra)}")
        for port in container.get("ports") or []:  # allowHostPorts: false
            if port.get("hostPort"):
                found.append(f"container {name} binds host port {port['hostPort']}")
        found += _seccomp(f"container {name}", context)
    return found


def _seccomp(who: str, context: dict[str, Any]) -> list[str]:
    profile = (context.get("seccompProfile") or {}).get("type")
    return [f"{who} asks for seccomp profile {profile}"] if profile and profile not in SECCOMP_PROFILES else []
