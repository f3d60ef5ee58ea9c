"""The private-folder helper shared by the image saver and the audit log, and the modes of the
files written there (the audit log, saved images)."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import pytest
from PIL import Image

from mj_mcp.audit import AUDIT_FILE, AuditLog
from mj_mcp.files import ensure_private_dir
from mj_mcp.saving import ImageSaver


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


# -- the audit log's file ------------------------------------------------------------------------


def append_one(folder: Path) -> Path:
    log = AuditLog(folder)
    log.append({"tool": "imagine", "taskId": "1", "prompt": "a private prompt"})
    return log.path


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_the_audit_log_is_user_only_in_a_world_writable_folder_whatever_the_umask(tmp_path: Path) -> None:
    folder = tmp_path / "shared"
    folder.mkdir()
    os.chmod(folder, 0o777)
    old = os.umask(0o000)
    try:
        path = append_one(folder)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o777  # the folder is the operator's choice


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_an_existing_world_readable_audit_log_is_made_user_only(tmp_path: Path) -> None:
    """Issue 12 row 9: an existing 0666 audit.jsonl in a 0777 MJ_OUTPUT_DIR stayed 0666."""
    folder = tmp_path / "shared"
    folder.mkdir()
    os.chmod(folder, 0o777)
    (folder / AUDIT_FILE).write_text('{"tool":"earlier"}\n')
    os.chmod(folder / AUDIT_FILE, 0o666)
    path = append_one(folder)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().splitlines()[0] == '{"tool":"earlier"}'
    assert "a private prompt" in path.read_text()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_the_audit_log_is_not_written_into_a_fifo_or_a_link(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / AUDIT_FILE)
    # A reader holds the FIFO open, so that opening it for writing does not wait for one.
    reader = os.open(tmp_path / AUDIT_FILE, os.O_RDONLY | os.O_NONBLOCK)
    try:
        with pytest.raises(OSError, match="not a regular file"):
            append_one(tmp_path)
        assert os.read(reader, 1) == b""  # nothing was written into it (no writer left: end of file)
    finally:
        os.close(reader)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "target").write_text("")
    (elsewhere / AUDIT_FILE).symlink_to(elsewhere / "target")
    with pytest.raises(OSError):  # noqa: PT011 - ELOOP: a link is never followed
        append_one(elsewhere)
    assert (elsewhere / "target").read_text() == ""


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX owners")
def test_an_audit_log_that_belongs_to_another_user_is_not_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / AUDIT_FILE).write_text("")
    real_uid = os.getuid()
    monkeypatch.setattr(os, "getuid", lambda: real_uid + 1)
    with pytest.raises(PermissionError, match="another user"):
        append_one(tmp_path)
    assert (tmp_path / AUDIT_FILE).read_text() == ""


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_saved_images_are_user_only_in_a_world_writable_folder_whatever_the_umask(tmp_path: Path) -> None:
    folder = tmp_path / "shared"
    folder.mkdir()
    os.chmod(folder, 0o777)
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buffer, "PNG")
    old = os.umask(0o000)
    try:
        saved = ImageSaver(folder).save_task("1", buffer.getvalue(), "image/png", grid=True)
    finally:
        os.umask(old)
    for path in [saved.path, *saved.quadrants]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
