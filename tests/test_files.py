"""The private-folder helper shared by the image saver and the audit log."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from mj_mcp.files import ensure_private_dir


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_a_new_folder_and_its_parents_are_made_user_only_whatever_the_umask(tmp_path: Path) -> None:
    folder = tmp_path / "a" / "b"
    old = os.umask(0o000)
    try:
        ensure_private_dir(folder)
    finally:
        os.umask(old)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_an_existing_folder_is_left_as_it_is(tmp_path: Path) -> None:
    folder = tmp_path / "shared"
    folder.mkdir(mode=0o755)
    os.chmod(folder, 0o755)
    ensure_private_dir(folder)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755


def test_a_file_in_the_way_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("x")
    with pytest.raises(NotADirectoryError):
        ensure_private_dir(tmp_path / "taken")
