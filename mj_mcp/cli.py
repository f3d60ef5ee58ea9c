"""Command line: flags -> Settings -> run the server, the simulator or the demo. Nothing else.

Every setting is an `MJ_*` environment variable and a flag; flags win. A wrong or missing
setting prints one line on stderr and exits 2. On stdio, stdout carries JSON-RPC only.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from typing import Any, Final, cast, get_args

from pydantic_core import PydanticUndefined

from mj_mcp import __version__
from mj_mcp.config import DEFAULT_HOST, DEFAULT_SIMULATOR_PORT, Settings, Transport, load_settings
from mj_mcp.errors import SettingsError
from mj_mcp.upstreams import DEFAULT_UPSTREAM, UPSTREAM_NAMES

__all__ = ["main"]

EPILOG = """\
Settings come from MJ_* environment variables (see the README); flags override them.
Quick start without a key:  mj-mcp demo    or    mj-mcp --simulator"""

_ENV_ONLY: Final = frozenset({"sim_job_seconds"})
"""Settings without a flag: the demo sets this one for the simulator it starts."""


def _flags() -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(flag, settings field, argparse options) for every setting, in the order of `Settings`.

    The help is the field's description, then its allowed values and its default. A boolean is a
    switch; `--transport` lists its choices, since no other spelling is accepted.
    """
    for name, field in Settings.model_fields.items():
        if name in _ENV_ONLY:
            continue
        options: dict[str, Any] = {}
        notes: list[str] = []
        values = tuple(v for v in get_args(field.annotation) if isinstance(v, str) and v)
        if values == get_args(Transport):
            options["choices"] = values
        elif values:
            notes.append(" | ".join(values))
        if field.annotation is bool:
            options.update(action="store_true", default=None)
        elif field.default not in (None, "", PydanticUndefined):
            notes.append(f"default {field.default}")
        help_text = field.description or ""
        options["help"] = f"{help_text} ({'; '.join(notes)})" if notes else help_text
        yield "--" + name.replace("_", "-"), name, options


_FLAGS: Final = tuple(_flags())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mj-mcp",
        description="MCP server for the Midjourney-proxy API.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"mj-mcp {__version__}")
    for flag, field, options in _FLAGS:
        parser.add_argument(flag, dest=field, **options)
    commands = parser.add_subparsers(dest="command", metavar="{simulate,demo}")
    simulate = commands.add_parser("simulate", help="run the upstream simulator alone as an HTTP server")
    simulate.add_argument("--host", dest="sim_host", default=DEFAULT_HOST)
    simulate.add_argument("--port", dest="sim_port", type=int, default=DEFAULT_SIMULATOR_PORT)
    simulate.add_argument("--job-seconds", type=float, default=None, help="how long a simulated job takes")
    simulate.add_argument("--api-key", dest="sim_key", default=None, help="require this key from clients")
    simulate.add_argument(
        "--upstream",
        dest="sim_upstream",
        choices=UPSTREAM_NAMES,
        default=DEFAULT_UPSTREAM,
        help=f"the upstream software to play (default {DEFAULT_UPSTREAM})",
    )
    simulate.add_argument(
        "--channel",
        dest="sim_channel",
        default=None,
        help="with --upstream new-api: the proxy behind it, plus (default), trueai or novicezk",
    )
    commands.add_parser("demo", help="a first run: imagine, watch progress, upscale, save the images")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "simulate":
            return _simulate(args)
        if args.command == "demo":
            from mj_mcp.demo import run_demo

            return run_demo()
        overrides = {field: getattr(args, field) for _, field, _ in _FLAGS}
        settings = load_settings(**overrides)
        logging.basicConfig(stream=sys.stderr, level=settings.log_level, format="%(levelname)s %(name)s: %(message)s")
        from mj_mcp.server import create_server

        if settings.transport == "stdio":
            server = create_server(settings)
            signal.signal(signal.SIGTERM, _exit_at_once)
            signal.signal(signal.SIGINT, _exit_at_once)
            server.run("stdio")
        else:
            from mj_mcp.transports import http_callbacks, serve_http

            # On HTTP the callback route lives in the same app as /mcp.
            callbacks = http_callbacks(settings)
            server = create_server(settings, callbacks=callbacks)
            serve_http(server, settings, callbacks=callbacks)
    except SettingsError as exc:
        print(f"mj-mcp: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


def _exit_at_once(signum: int, frame: object) -> None:
    """SIGTERM or SIGINT (Ctrl+C) on stdio: end at once with exit code 0 and no traceback.

    The stdio reader blocks on stdin in a worker thread, so an orderly shutdown (which is what
    SIGINT's KeyboardInterrupt starts) waits for input that never comes. Nothing is lost by
    stopping here: saved images are published atomically (temporary file, then link) and each
    audit line is a single write.
    """
    os._exit(0)


def _channel(upstream: str, channel: str) -> str:
    """`--channel`, checked: only new-api has a proxy behind it (imported here: the simulator is
    not loaded at start-up)."""
    from mj_mcp.simulator.profiles import CHANNELS, PROFILE_BY_NAME

    if PROFILE_BY_NAME[cast(Any, upstream)].channel is None:  # a gateway's profile names its channel
        raise SettingsError(f"--channel goes with --upstream new-api (the proxy behind it), not with {upstream}")
    if channel not in CHANNELS:
        raise SettingsError(f"--channel must be one of {', '.join(CHANNELS)}, not {channel!r}")
    return channel


def _simulate(args: argparse.Namespace) -> int:
    from mj_mcp.simulator import run_simulator

    options: dict[str, Any] = {}
    if args.job_seconds is not None:
        if args.job_seconds <= 0:
            raise SettingsError("--job-seconds must be greater than 0")
        options["job_seconds"] = args.job_seconds
    if args.sim_key:
        options["api_key"] = args.sim_key
    options["upstream"] = args.sim_upstream
    playing = args.sim_upstream
    if args.sim_channel is not None:
        options["channel"] = _channel(args.sim_upstream, args.sim_channel)
        playing = f"{playing} in front of a {args.sim_channel} proxy"
    print(
        f"mj-mcp simulator playing {playing} on http://{args.sim_host}:{args.sim_port}/mj (Ctrl+C to stop)",
        file=sys.stderr,
    )
    run_simulator(args.sim_host, args.sim_port, **options)
    return 0
