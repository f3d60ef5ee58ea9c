"""Ending a stdio server by signal (issue 12, row 9): SIGINT (Ctrl+C) ends it like SIGTERM, at
once and with the same exit status, while stdin stays open and silent, with nothing but
JSON-RPC on stdout."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import child_env

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_ends_a_stdio_server_at_once_with_exit_status_0(tmp_path: Path, signum: signal.Signals) -> None:
    with (tmp_path / "stderr.log").open("w") as errlog:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mj_mcp", "--simulator"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errlog,
            env=child_env(tmp_path),
        )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        proc.stdin.write(json.dumps(INITIALIZE).encode() + b"\n")
        proc.stdin.flush()
        first = proc.stdout.readline()  # the server is up and reading stdin
        proc.send_signal(signum)
        code = proc.wait(timeout=10)  # stdin stays open: the old SIGINT waited for its next byte
        rest = proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdin.close()
        proc.stdout.close()
    assert code == 0
    for line in [first, *rest.splitlines()]:
        assert json.loads(line)["jsonrpc"] == "2.0"
    assert "Traceback" not in (tmp_path / "stderr.log").read_text(errors="replace")
