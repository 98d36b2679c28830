"""spec.pod: fitting a VoiceAgent's proxy pods to the cluster (scheduling, pod labels and annotations, a ServiceAccount
of their own, extra env, envFrom and volumes, security contexts), merged over the operator's defaults and checked.

Pure. The operator's defaults are `GLIMPSE_PROXY_POD_DEFAULTS` (the chart's `operator.proxyDefaults.pod`), in
spec.pod's shape; a VoiceAgent's own fields override them (`merged`). render.py puts the result into the pod template.

What a VoiceAgent may ask for is bounded, so that its author gains through the operator nothing the namespace's RBAC
and the restricted Pod Security Standard would not give them: no host namespaces, host paths or node volumes, no
privileged container, privilege escalation or added capability, no root user, no AppArmor or legacy seccomp
annotation; no label the operator's selectors use, no annotation of the operator's, no environment variable the
operator sets, no volume or mount of its own; the ServiceAccount is one the operator makes for this VoiceAgent alone
(never an existing one, whose identity the cloud may trust for something else), and its token is never mounted (nor
projected into a volume). The CRD refuses the same at admission (manifests/crd/voiceagent.yaml;
tests/delivery/test_crd_validation.py holds both to the same cases); these checks also cover what no API server
saw: the operator's defaults and `glimpse-operator render`'s files.
"""

from __future__ import annotations

import copy
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic.alias_generators import to_camel

from .render import FALLBACK_KEY_ENV, OPERATOR_ENV, OWN_VOLUMES, labels
from .spec import InvalidSpec

# The volume types a VoiceAgent may add: the restricted Pod Security Standard's (hostPath and every node or network
# volume type are not among them).
VOLUME_SOURCES = ("configMap", "secret", "emptyDir", "projected", "persistentVolumeClaim", "csi", "downwardAPI",
                  "ephemeral")
# Labels the operator's selectors, its Deployment watch and the ServiceMonitor rely on; and its own prefix.
OPERATOR_LABELS = frozenset(labels(""))
OPERATOR_PREFIX = "glimpse.dev/"
# Pod annotations that would loosen the proxy's confinement (AppArmor's `unconfined`, the legacy seccomp ones): the
# restricted Pod Security Standard refuses them, but only where a namespace enforces it.
CONFINEMENT_PREFIXES = ("container.apparmor.security.beta.kubernetes.io/", "seccomp.security.alpha.kubernetes.io/",
                        "container.seccomp.security.alpha.kubernetes.io/")
# Lists merged item by item (the VoiceAgent's item replaces the default's of the same key); other lists are replaced.
KEYED_LISTS = {"env": "name", "volumes": "name", "volumeMounts": "mountPath"}

Object = dict[str, Any]  # a Kubernetes structure the API server checks when the Deployment is applied
EnvName = Annotated[str, Field(pattern=r"^[-._a-zA-Z][-._a-zA-Z0-9]*$", max_length=256)]
VolumeName = Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)]
Id = Annotated[int, Field(ge=0)]


class _Fields(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, alias_generator=to_camel, frozen=True)


class ServiceAccount(_Fields):
    create: bool = False
    annotations: dict[str, str] = {}


class EnvVar(_Fields):
    name: EnvName
    value: str | None = None
    value_from: Object | None = None

    @field_validator("name")
    @classmethod
    def _not_the_operators(cls, name: str) -> str:
        if name in OPERATOR_ENV or re.match(FALLBACK_KEY_ENV, name):
            raise ValueError(f"{name} is set by the operator (from the VoiceAgent's other fields)")
        return name


class _Open(BaseModel):
    """A volume source the API server checks, but for the one field refused here."""
    model_config = ConfigDict(extra="allow", strict=True, alias_generator=to_camel, frozen=True)


class ProjectedSource(_Open):
    @model_validator(mode="before")
    @classmethod
    def _no_token(cls, data: Any) -> Any:
        if isinstance(data, dict) and "serviceAccountToken" in data:
            raise ValueError("a serviceAccountToken source is not allowed: the proxy's pods mount no API token (IRSA "
                             "and Workload Identity bring their own)")
        return data


class Projected(_Open):
    sources: Annotated[list[ProjectedSource], Field(max_length=16)] | None = None


class Volume(_Fields):
    name: VolumeName
    config_map: Object | None = None
    secret: Object | None = None
    empty_dir: Object | None = None
    projected: Projected | None = None
    persistent_volume_claim: Object | None = None
    csi: Object | None = None
    downward_api: Object | None = Field(None, alias="downwardAPI")
    ephemeral: Object | None = None

    @model_validator(mode="before")
    @classmethod
    def _one_allowed_source(cls, data: Any) -> Any:
        if isinstance(data, dict):
            sources = [key for key in data if key != "name"]
            if refused := [key for key in sources if key not in VOLUME_SOURCES]:
                raise ValueError(f"a {refused[0]} volume is not allowed: a volume is one of "
                                 f"{', '.join(VOLUME_SOURCES)}")
            if len(sources) != 1:
                raise ValueError(f"a volume needs exactly one of {', '.join(VOLUME_SOURCES)}")
        return data

    @field_validator("name")
    @classmethod
    def _not_the_operators(cls, name: str) -> str:
        if name in OWN_VOLUMES:
            raise ValueError(f"{name} is the operator's own volume (mounted at {OWN_VOLUMES[name]})")
        return name


class VolumeMount(_Fields):
    name: VolumeName
    mount_path: Annotated[str, Field(min_length=1, max_length=1024)]
    read_only: bool | None = None
    sub_path: str | None = None

    @field_validator("mount_path")
    @classmethod
    def _not_the_operators(cls, path: str) -> str:
        if path.rstrip("/") in OWN_VOLUMES.values():
            raise ValueError(f"{path} is where the operator mounts a volume of its own")
        return path


class SeccompProfile(_Fields):
    type: Literal["RuntimeDefault", "Localhost"]
    localhost_profile: str | None = None


class _Identity(_Fields):
    """What both security contexts may say about who the proxy runs as: never root."""
    run_as_user: int | None = None
    run_as_group: Id | None = None
    run_as_non_root: bool | None = None
    seccomp_profile: SeccompProfile | None = None

    @field_validator("run_as_user")
    @classmethod
    def _not_root(cls, user: int | None) -> int | None:
        if user is not None and user <= 0:
            raise ValueError("the proxy never runs as root: runAsUser must be above 0")
        return user

    @field_validator("run_as_non_root")
    @classmethod
    def _stays_non_root(cls, value: bool | None) -> bool | None:
        if value is False:
            raise ValueError("the proxy never runs as root: runAsNonRoot must stay true")
        return value


class PodSecurityContext(_Identity):
    fs_group: Id | None = None
    fs_group_change_policy: Literal["Always", "OnRootMismatch"] | None = None
    supplemental_groups: list[Id] | None = None


class Capabilities(_Fields):
    add: list[str] | None = None
    drop: list[str] | None = None

    @model_validator(mode="after")
    def _only_dropped(self) -> Capabilities:
        if self.add:
            raise ValueError("no capability may be added")
        if "ALL" not in (self.drop or []):
            raise ValueError("capabilities.drop must keep ALL")
        return self


class ContainerSecurityContext(_Identity):
    read_only_root_filesystem: bool | None = None
    allow_privilege_escalation: bool | None = None
    privileged: bool | None = None
    capabilities: Capabilities | None = None

    @field_validator("privileged", "allow_privilege_escalation")
    @classmethod
    def _never_true(cls, value: bool | None, info: ValidationInfo) -> bool | None:
        if value:
            raise ValueError(NEVER_TRUE[str(info.field_name)])
        return value


# The container security context's fields that stay false, and what a true one is told
NEVER_TRUE = {"privileged": "the proxy never runs privileged",
              "allow_privilege_escalation": "allowPrivilegeEscalation must stay false"}


class PodFields(_Fields):
    """spec.pod, as the CRD declares it (manifests/crd/voiceagent.yaml): every field optional."""
    node_selector: dict[str, str] = {}
    tolerations: list[Object] = []
    affinity: Object = {}
    topology_spread_constraints: list[Object] = []
    priority_class_name: str = ""
    annotations: dict[str, str] = {}
    labels: dict[str, str] = {}
    service_account: ServiceAccount = ServiceAccount()
    env: list[EnvVar] = []
    env_from: list[Object] = []
    volumes: list[Volume] = []
    volume_mounts: list[VolumeMount] = []
    security_context: PodSecurityContext | None = None
    container_security_context: ContainerSecurityContext | None = None

    @field_validator("labels")
    @classmethod
    def _not_the_operators_labels(cls, value: dict[str, str]) -> dict[str, str]:
        if taken := sorted(key for key in value if key in OPERATOR_LABELS or key.startswith(OPERATOR_PREFIX)):
            raise ValueError(f"{taken[0]} is the operator's own label (its selectors use it)")
        return value

    @field_validator("annotations")
    @classmethod
    def _not_the_operators_annotations(cls, value: dict[str, str]) -> dict[str, str]:
        if taken := sorted(key for key in value if key.startswith(OPERATOR_PREFIX)):
            raise ValueError(f"{taken[0]} is the operator's own annotation")
        if loosening := sorted(key for key in value if key.startswith(CONFINEMENT_PREFIXES)):
            raise ValueError(f"{loosening[0]}: AppArmor and legacy seccomp annotations are not allowed: the proxy "
                             "keeps the runtime's default confinement (spec.pod.securityContext.seccompProfile sets "
                             "seccomp)")
        return value

    @field_validator("env", "volumes", "volume_mounts")
    @classmethod
    def _unique(cls, items: list[EnvVar] | list[Volume] | list[VolumeMount]) -> Any:
        keys = [item.mount_path if isinstance(item, VolumeMount) else item.name for item in items]
        if duplicates := sorted({key for key in keys if keys.count(key) > 1}):
            raise ValueError(f"{duplicates[0]} is given twice")
        return items


def check(pod: Any, where: str, *, whole: bool = True) -> dict[str, Any]:
    """`pod` when spec.pod may say it; an `InvalidSpec` naming every problem (`where`: spec.pod, or the setting)
    otherwise. `whole`: also that every volume mounted is one of its volumes (false for a VoiceAgent's own fields,
    which may mount a volume of the operator's defaults)."""
    if not isinstance(pod, dict):
        raise InvalidSpec(f"{where} must be a mapping")
    try:
        fields = PodFields.model_validate(pod)
    except ValidationError as exc:
        raise InvalidSpec(_describe(exc, where)) from None
    volumes = {volume.name for volume in fields.volumes}
    if whole and (missing := [m for m in fields.volume_mounts if m.name not in volumes]):
        raise InvalidSpec(f"{_join(where, 'volumeMounts')}: {missing[0].name} is not a volume of "
                          f"{_join(where, 'volumes')}")
    return pod


def merged(defaults: dict[str, Any], own: dict[str, Any]) -> dict[str, Any]:
    """The VoiceAgent's spec.pod over the operator's defaults: a map's keys merged (each of the VoiceAgent's values
    replacing the default's whole: nodeSelector, labels, affinity's kinds, a security context's fields), env and
    volumes merged by name and volumeMounts by mountPath, anything else (tolerations, topology spread constraints,
    envFrom, priorityClassName) the VoiceAgent's when it gives one."""
    result = copy.deepcopy(defaults)
    for key, value in copy.deepcopy(own).items():
        base = result.get(key)
        if key in KEYED_LISTS and isinstance(base, list) and isinstance(value, list):
            field = KEYED_LISTS[key]
            replaced = {item.get(field) for item in value if isinstance(item, dict)}
            result[key] = [item for item in base if item.get(field) not in replaced] + value
        elif isinstance(base, dict) and isinstance(value, dict):
            result[key] = {**base, **value}
        else:
            result[key] = value
    return result


def with_pod_defaults(spec: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """`spec` (with the CRD's defaults) with spec.pod merged over the operator's `defaults` and checked: what
    render.py renders. An `InvalidSpec` names what spec.pod may not say."""
    own = check(spec["pod"], "spec.pod", whole=False)
    return {**spec, "pod": check(merged(defaults, own), "spec.pod")}


def _join(where: str, path: str) -> str:
    return f"{where}.{path}" if where else path


def _describe(error: ValidationError, where: str) -> str:
    """One line: each problem as `spec.pod.volumes[0]: a hostPath volume is not allowed: …`."""
    problems = []
    for problem in error.errors(include_url=False, include_input=False):
        path = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in problem["loc"])
        message = "no such field" if problem["type"] == "extra_forbidden" else problem["msg"]
        problems.append(f"{_join(where, path.lstrip('.'))}: {message.removeprefix('Value error, ')}")
    return "; ".join(problems)
