"""The audit log: one JSON line per job-starting call, in `<MJ_OUTPUT_DIR>/audit.jsonl`.

Every job that may cost credits (the `_job` and `_upload` handlers of server.py, after the
upstream accepted the submit) is recorded as
`{"time": ISO-8601 UTC, "tool", "taskId", "prompt" (when the call has one), "mode"}`, and with
MJ_CLIENT_KEYS `"tenant"`: the tenant id (`tenancy.Tenant.id`, a keyed hash of the client's key)
whose key paid for it. Never image data, never a key: only the fields listed here are written.

Each line is one `os.write` on a descriptor opened with `O_APPEND`, so concurrent calls and
processes do not interleave lines. The file is this user's alone whatever the folder's mode
(the prompts in it are private): created 0o600 (the folder, when missing, user-only by
`files.ensure_private_dir`, as for saved images), an existing file with looser permissions is
set back to 0o600 on the open descriptor, and a file that is not a regular file or belongs to
another user (planted in a shared folder) is not written to. Writing happens in a worker
thread, and a failure to write is logged as a warning: the audit log never fails the tool call
that it records.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import anyio.to_thread

from mj_mcp.files import ensure_private_dir

__all__ = ["AUDIT_FILE", "AuditLog"]

AUDIT_FILE: Final = "audit.jsonl"

logger = logging.getLogger(__name__)

_MODE: Final = 0o600
_FLAGS: Final = (
    os.O_WRONLY
    | os.O_APPEND
    | os.O_CREAT
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_NONBLOCK", 0)  # a FIFO planted under the name: fail at once, do not wait
)


class AuditLog:
    """Appends one JSON line per started job to `<output_dir>/audit.jsonl`."""

    def __init__(self, output_dir: Path, *, tenant: str | None = None) -> None:
        self.path = Path(os.path.expanduser(output_dir)).absolute() / AUDIT_FILE
        self.tenant = tenant
        """The tenant id every line of this log names (None: one key, no tenant field)."""

    async def record(self, tool: str, task_id: str | None, *, prompt: object = None, mode: str | None = None) -> None:
        """Write one entry in a worker thread; log a warning (and carry on) if it cannot be written."""
        entry: dict[str, Any] = {"time": datetime.now(UTC).isoformat(timespec="milliseconds"), "tool": tool}
        entry["taskId"] = task_id
        if isinstance(prompt, str):
            entry["prompt"] = prompt
        entry["mode"] = mode or None
        if self.tenant is not None:
            entry["tenant"] = self.tenant
        try:
            await anyio.to_thread.run_sync(self.append, entry)
        except OSError as exc:
            logger.warning("Could not write the audit log %s: %s", self.path, exc.strerror or type(exc).__name__)

    def append(self, entry: dict[str, Any]) -> None:
        """Blocking: append `entry` as one line (one write on an O_APPEND descriptor)."""
        ensure_private_dir(self.path.parent)
        line = (json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
        fd = os.open(self.path, _FLAGS, _MODE)
        try:
            _make_private(fd)
            os.write(fd, line)
        finally:
            os.close(fd)


def _make_private(fd: int) -> None:
    """Refuse a file that is not a regular file of ours; make an existing file user-only."""
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise OSError(errno.EINVAL, f"{AUDIT_FILE} is not a regular file")
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        raise PermissionError(errno.EACCES, f"{AUDIT_FILE} belongs to another user")
    if stat.S_IMODE(info.st_mode) & ~_MODE:
        os.fchmod(fd, _MODE)
