"""The audit log: one JSON line per job-starting call, in `<MJ_OUTPUT_DIR>/audit.jsonl`.

Every job that may cost credits (the `_job` and `_upload` handlers of server.py, after the
upstream accepted the submit) is recorded as
`{"time": ISO-8601 UTC, "tool", "taskId", "prompt" (when the call has one), "mode"}`.
Never image data, never the key: only the fields listed here are written.

Each line is one `os.write` on a descriptor opened with `O_APPEND` (file mode 0o600, the
folder created user-only by `files.ensure_private_dir`, as for saved images), so concurrent calls and processes do not
interleave lines. Writing happens in a worker thread, and a failure to write is logged as a
warning: the audit log never fails the tool call that it records.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import anyio.to_thread

from mj_mcp.files import ensure_private_dir

__all__ = ["AUDIT_FILE", "AuditLog"]

AUDIT_FILE: Final = "audit.jsonl"

logger = logging.getLogger(__name__)

_FLAGS: Final = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)


class AuditLog:
    """Appends one JSON line per started job to `<output_dir>/audit.jsonl`."""

    def __init__(self, output_dir: Path) -> None:
        self.path = Path(os.path.expanduser(output_dir)).absolute() / AUDIT_FILE

    async def record(self, tool: str, task_id: str | None, *, prompt: object = None, mode: str | None = None) -> None:
        """Write one entry in a worker thread; log a warning (and carry on) if it cannot be written."""
        entry: dict[str, Any] = {"time": datetime.now(UTC).isoformat(timespec="milliseconds"), "tool": tool}
        entry["taskId"] = task_id
        if isinstance(prompt, str):
            entry["prompt"] = prompt
        entry["mode"] = mode or None
        try:
            await anyio.to_thread.run_sync(self.append, entry)
        except OSError as exc:
            logger.warning("Could not write the audit log %s: %s", self.path, exc.strerror or type(exc).__name__)

    def append(self, entry: dict[str, Any]) -> None:
        """Blocking: append `entry` as one line (one write on an O_APPEND descriptor)."""
        ensure_private_dir(self.path.parent)
        line = (json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
        fd = os.open(self.path, _FLAGS, 0o600)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
