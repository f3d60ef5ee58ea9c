"""Folders only this user may enter, for what the server writes: saved images and the audit log."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["ensure_private_dir"]


def ensure_private_dir(folder: Path) -> None:
    """Create `folder` (and its parents) user-only (0o700) when it is missing; an existing folder
    is left as it is. Blocking. Raises NotADirectoryError when something else has the name, and
    OSError when the folder cannot be made."""
    try:
        folder.mkdir(parents=True, mode=0o700)
    except FileExistsError:
        if not folder.is_dir():
            raise NotADirectoryError(f"{folder} exists and is not a folder") from None
        return
    # mkdir's mode is filtered by the umask; make it exactly user-only.
    os.chmod(folder, 0o700)
