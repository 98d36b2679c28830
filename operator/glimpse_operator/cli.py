"""`glimpse-operator`: run the kopf operator (in a cluster, or locally against the current kubeconfig)."""

from __future__ import annotations

import sys

from .settings import ConfigError, load_settings


def main() -> int:
    try:
        load_settings()  # read once, here, so a bad variable is one line on stderr; the startup handler reuses them
    except ConfigError as exc:
        print(f"glimpse-operator: configuration error: {exc}", file=sys.stderr)
        return 2

    import kopf.cli

    args = sys.argv[1:] or ["--all-namespaces"]
    sys.argv = ["kopf", "run", "--module", "glimpse_operator.handlers", *args]
    return int(kopf.cli.main() or 0)


if __name__ == "__main__":
    raise SystemExit(main())
