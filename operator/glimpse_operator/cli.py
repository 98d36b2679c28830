"""`glimpse-operator`: run the kopf operator (in a cluster, or locally against the current kubeconfig)."""

from __future__ import annotations

import sys


def main() -> int:
    import kopf.cli

    args = sys.argv[1:] or ["--all-namespaces"]
    sys.argv = ["kopf", "run", "--module", "glimpse_operator.handlers", *args]
    return kopf.cli.main() or 0  # type: ignore[func-returns-value]


if __name__ == "__main__":
    raise SystemExit(main())
