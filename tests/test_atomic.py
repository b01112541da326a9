"""Atomic directory writes (rhocluster.common.atomic.atomic_dir): all or nothing, old content kept on failure."""

from __future__ import annotations

import os
import stat

import pytest

from rhocluster.common import atomic
from rhocluster.common.atomic import atomic_dir


def _tree(root) -> dict[str, bytes]:
    """Every file under ``root`` (relative path -> bytes)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _write(directory, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_bytes(data)


OLD = {"a.txt": b"old a", "sub/b.bin": b"\x00old b", "only_old.txt": b"gone after a replace"}
NEW = {"a.txt": b"new a", "sub/b.bin": b"\x01new b", "sub/deeper/c.txt": b"new c"}


def test_creates_directory_with_plain_permissions(tmp_path):
    out = tmp_path / "parent" / "out"  # the parent is created too
    with atomic_dir(out) as tmp:
        assert tmp.parent == out.parent and tmp.name.startswith(".out.") and not out.exists()
        assert list(tmp.iterdir()) == []
        _write(tmp, NEW)
    assert _tree(out) == NEW
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o777 & ~umask  # not mkdtemp's 0700
    assert sorted(p.name for p in out.parent.iterdir()) == ["out"]


def test_replaces_existing_directory_wholly(tmp_path):
    out = tmp_path / "out"
    _write(out, OLD)
    with atomic_dir(out) as tmp:
        _write(tmp, NEW)
        assert _tree(out) == OLD  # readers see the old directory until the block succeeds
    assert _tree(out) == NEW  # no file of the old directory survives (only_old.txt)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


@pytest.mark.parametrize("existing", [True, False])
def test_failure_leaves_previous_content_and_no_half_directory(tmp_path, existing):
    out = tmp_path / "out"
    if existing:
        _write(out, OLD)
    with pytest.raises(RuntimeError, match="killed mid-write"):
        with atomic_dir(out) as tmp:
            _write(tmp, {"a.txt": b"half"})
            raise RuntimeError("killed mid-write")
    assert sorted(p.name for p in tmp_path.iterdir()) == (["out"] if existing else [])
    if existing:
        assert _tree(out) == OLD


def test_failed_final_rename_puts_the_old_directory_back(tmp_path, monkeypatch):
    out = tmp_path / "out"
    _write(out, OLD)
    real_replace = os.replace
    calls = []

    def flaky_replace(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:  # 1: old aside, 2: new into place
            raise OSError("disk went away")
        real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", flaky_replace)
    with pytest.raises(OSError, match="disk went away"):
        with atomic_dir(out) as tmp:
            _write(tmp, NEW)
    monkeypatch.undo()
    assert len(calls) == 3  # aside, failed rename, restore
    assert _tree(out) == OLD
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_refuses_to_replace_a_file(tmp_path):
    out = tmp_path / "out"
    out.write_text("a file")
    with pytest.raises(NotADirectoryError, match="out exists and is not a directory"):
        with atomic_dir(out):
            pass
    assert out.read_text() == "a file" and sorted(p.name for p in tmp_path.iterdir()) == ["out"]
