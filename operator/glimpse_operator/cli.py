"""`glimpse-operator`: run the kopf operator (in a cluster, or locally against the current kubeconfig).

`glimpse-operator [kopf run options]` runs it (without `--namespace` or `--all-namespaces`: its own namespace only);
`glimpse-operator render -f voiceagent.yaml` prints what it would apply and send, touching nothing.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from pathlib import Path

from .dry_run import InvalidVoiceAgent, render_file, to_yaml
from .settings import ConfigError, OperatorSettings, load_settings

RENDER = "render"
# The namespace of the pod's service account, mounted beside its token in every pod that has one (Kubernetes docs,
# "Accessing the Kubernetes API from a Pod": /var/run/secrets/kubernetes.io/serviceaccount/namespace).
POD_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:  # read once, here, so a bad variable is one line on stderr; the startup handler reuses them
        settings = load_settings()
    except ConfigError as exc:
        print(f"glimpse-operator: configuration error: {exc}", file=sys.stderr)
        return 2
    if args[:1] == [RENDER]:
        return render(args[1:], settings)

    import kopf.cli

    sys.argv = ["kopf", "run", "--module", "glimpse_operator.handlers", *with_priority(with_scope(args))]
    return int(kopf.cli.main() or 0)


def with_scope(args: list[str]) -> list[str]:
    """Least privilege by default: without a namespace option, the operator serves its own namespace (the pod's, or
    the kubeconfig context's when run from a machine), never every namespace unless asked (`--all-namespaces`)."""
    scoped = any(arg in ("-n", "-A") or arg.startswith(("--namespace", "--all-namespaces", "--clusterwide"))
                 or (arg.startswith("-n") and not arg.startswith("--")) for arg in args)
    return args if scoped else [f"--namespace={own_namespace()}", *args]


def own_namespace() -> str:
    """The pod's namespace in a cluster; elsewhere the current kubeconfig context's (`default` when it names none)."""
    if POD_NAMESPACE_FILE.is_file():
        return POD_NAMESPACE_FILE.read_text().strip()
    from kubernetes import config

    try:
        # KUBECONFIG as it is now (the client's own default reads it once, at import); unset: ~/.kube/config
        _, active = config.list_kube_config_contexts(  # type: ignore[no-untyped-call]
            os.environ.get("KUBECONFIG") or None)
    except (config.ConfigException, OSError):
        return "default"
    namespace: str = (active.get("context") or {}).get("namespace") or "default"
    return namespace


def with_priority(args: list[str]) -> list[str]:
    """With peering, kopf pauses every replica that shares its priority with another: each replica gets its own
    random one unless the caller set it, so exactly one (the highest) works and the others stand by."""
    peering = any(arg.startswith("--peering") for arg in args)
    if not peering or any(arg.startswith("--priority") for arg in args):
        return args
    return [*args, f"--priority={secrets.randbelow(2**31)}"]


def render(args: list[str], settings: OperatorSettings) -> int:
    parser = argparse.ArgumentParser(
        prog=f"glimpse-operator {RENDER}",
        description="Print every Kubernetes object the operator would apply for the VoiceAgents in a file, and the "
                    "ElevenLabs agent body it would send (kind ElevenLabsAgent), as YAML. No cluster, no network.")
    parser.add_argument("-f", "--filename", required=True, help="a file of VoiceAgents (YAML or JSON); - reads stdin")
    source = parser.parse_args(args).filename
    try:
        if source == "-":
            text = sys.stdin.read()
        else:
            with open(source, encoding="utf-8") as file:
                text = file.read()
        documents = render_file(text, settings.proxy_image, settings.proxy_network_policy.as_spec(),
                                settings.proxy_pod_defaults, settings.proxy_tracing.as_spec())
    except OSError as exc:
        return _fail(source, exc.strerror or type(exc).__name__)
    except UnicodeDecodeError:
        return _fail(source, "not UTF-8 text")
    except InvalidVoiceAgent as exc:
        return _fail(source, str(exc))
    sys.stdout.write(to_yaml(documents, source))
    return 0


def _fail(source: str, problem: str) -> int:
    one_line = " ".join(problem.split())
    print(f"glimpse-operator {RENDER}: {source}: {one_line}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
