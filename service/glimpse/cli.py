"""`glimpse serve`: start the proxy from GLIMPSE_* settings (and an optional --config file)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable

from . import __version__
from .config import ConfigError, Settings
from .observability.logs import configure_logging


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="glimpse", description="Glimpse: voice agents that can see.")
    parser.add_argument("--version", action="version", version=f"glimpse {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the proxy")
    serve.add_argument("--config", help="TOML or JSON file with settings (environment variables win)")
    serve.add_argument("--host", help="overrides GLIMPSE_HOST")
    serve.add_argument("--port", type=int, help="overrides GLIMPSE_PORT")
    args = parser.parse_args(argv)

    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    try:
        settings = Settings.load(config_file=args.config, **overrides)
    except ConfigError as exc:
        print(f"glimpse: configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)

    try:  # checks the installed aiohttp for the private attributes the connection guard needs (it imports only aiohttp)
        from .web import aiohttp_internals  # noqa: F401
    except ImportError as exc:  # its UnsupportedAiohttp, or no usable aiohttp at all
        print(f"glimpse: {exc}", file=sys.stderr)
        return 1
    from .server import serve as run

    try:
        with asyncio.Runner(loop_factory=_fast_loop_factory()) as runner:
            runner.run(run(settings))
    except OSError as exc:
        print(f"glimpse: cannot listen on {settings.host}:{settings.port}: {exc.strerror}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


def _fast_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop where it is installed (it is a dependency on Linux): less CPU per relayed chunk."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


if __name__ == "__main__":
    raise SystemExit(main())
