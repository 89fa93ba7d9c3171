"""Atomic writes: the old file or the new one, never half; disk errors name the destination."""

import errno
import os
import tempfile

import pytest

from minae import _io
from minae._io import atomic_open, atomic_write_text, writable_dir


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_a_write_replaces_the_file_and_leaves_no_temporary(tmp_path):
    target = atomic_write_text(tmp_path / "sub" / "results.json", "new")
    assert target.read_text() == "new" and leftovers(target.parent) == []
    assert oct(target.stat().st_mode & 0o777) == oct(0o666 & ~_io._UMASK)


def fail_with(code):
    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code))
    return fail


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT, errno.EIO])
@pytest.mark.parametrize("where", ["write", "fsync", "replace"])
def test_a_disk_error_names_the_destination_and_keeps_the_old_file(tmp_path, monkeypatch, code, where):
    target = tmp_path / "results.json"
    target.write_text("old")
    if where != "write":
        monkeypatch.setattr(os, where, fail_with(code))
    with pytest.raises(OSError) as err:
        with atomic_open(target) as f:
            f.write(b"new")
            if where == "write":   # what f.write raises when the disk fills under it
                fail_with(code)()
    assert type(err.value) is OSError and err.value.errno == code
    text = str(err.value)
    assert f"[Errno {code}] cannot write {target} (the old file is unchanged): {os.strerror(code)}" in text
    if code in (errno.ENOSPC, errno.EDQUOT):
        assert "free some space" in text
    monkeypatch.undo()
    assert target.read_text() == "old" and leftovers(tmp_path) == []


def test_a_folder_you_cannot_write_in_keeps_its_kind_of_error(tmp_path, monkeypatch):
    def denied(*args, dir=None, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", os.path.join(dir, ".results.json.x.tmp"))

    monkeypatch.setattr(tempfile, "mkstemp", denied)
    with pytest.raises(PermissionError, match=rf"cannot write {tmp_path / 'results.json'}: Permission "
                                              "denied; make the folder writable for you") as err:
        atomic_write_text(tmp_path / "results.json", "x")
    assert err.value.errno == errno.EACCES


def test_an_unwritable_folder_names_itself(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(OSError, match=rf"cannot write files in {blocker / 'out'}: .*; check the path"):
        writable_dir(blocker / "out")


def test_other_errors_pass_through_and_clean_up(tmp_path):
    with pytest.raises(KeyError):
        with atomic_open(tmp_path / "x.bin") as f:
            f.write(b"half")
            raise KeyError("not a disk error")
    assert list(tmp_path.iterdir()) == []


# --- JSON files read with suspicion ---------------------------------------------------

@pytest.mark.parametrize("content, max_bytes, reason", [
    ("[" * 100_000 + "]" * 100_000, None, "its JSON nests deeper than Python's parser goes"),
    (b"\xff\xfe\x00 not text", None, "it is not valid JSON"),
    ("{nope", None, "it is not valid JSON"),
    ('"' + "x" * 1000 + '"', 1000, "it holds 1,002 bytes, more than the 1,000 of any JSON file minae writes"),
], ids=["deep", "not-text", "not-json", "too-big"])
def test_read_json_says_why_a_file_is_not_json_it_can_use(tmp_path, content, max_bytes, reason):
    path = tmp_path / "record.json"
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    kwargs = {} if max_bytes is None else {"max_bytes": max_bytes}
    with pytest.raises(ValueError) as err:
        _io.read_json(path, **kwargs)
    assert str(err.value).startswith(reason)


def test_read_json_refuses_a_fifo_or_a_folder_without_waiting(tmp_path):
    os.mkfifo(tmp_path / "fifo.json")   # opened for reading the plain way, it would wait for a writer
    (tmp_path / "folder.json").mkdir()
    for name in ("fifo.json", "folder.json"):
        with pytest.raises(ValueError, match="it is not a regular file"):
            _io.read_json(tmp_path / name)
    (tmp_path / "ok.json").write_text('{"a": [1, 2]}')
    assert _io.read_json(tmp_path / "ok.json") == {"a": [1, 2]}
    with pytest.raises(FileNotFoundError):
        _io.read_json(tmp_path / "missing.json")
