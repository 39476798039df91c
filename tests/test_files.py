"""files.py: atomic writes and outputs that never destroy what was there before they are
complete."""

import json

import pytest

from tinyllama_cli import files
from tinyllama_cli.errors import UserError


def test_write_json_replaces_the_file_whole_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "a.json"
    files.write_json(path, {"x": 1})
    files.write_json(path, {"x": 2}, indent=None, fsync=True)
    assert json.loads(path.read_text()) == {"x": 2} and path.read_text() == '{"x": 2}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_staged_output_is_published_only_on_success(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("the user's")
    with pytest.raises(RuntimeError), files.staged(out, overwrite=True) as tmp:
        tmp.mkdir()
        (tmp / "new.txt").write_text("half")
        raise RuntimeError("crash mid-write")
    assert [p.name for p in tmp_path.iterdir()] == ["out"] and (out / "old.txt").is_file()
    with files.staged(out, overwrite=True) as tmp:
        tmp.mkdir()
        (tmp / "new.txt").write_text("complete")
    assert [p.name for p in out.iterdir()] == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # the old copy is gone after the swap


def test_existing_outputs_need_overwrite(tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    (tmp_path / "empty").mkdir()
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="already exists; pass --overwrite"):
        files.check_new_dir(tmp_path / "full", overwrite=False)
    files.check_new_dir(tmp_path / "empty", overwrite=False)
    files.check_new_dir(tmp_path / "full", overwrite=True)
    with pytest.raises(UserError, match="is not a directory"):
        files.check_new_dir(tmp_path / "file", overwrite=True)
    with (
        pytest.raises(UserError, match="choose another --to-dir or pass --overwrite"),
        files.staged(tmp_path / "file", overwrite=False, flag="--to-dir"),
    ):
        pass
    assert (tmp_path / "file").read_text() == "x"


def test_publish_moves_a_file_over_an_old_one(tmp_path):
    (tmp_path / "new").write_text("new")
    (tmp_path / "dst").write_text("old")
    files.publish(tmp_path / "new", tmp_path / "dst")
    assert (tmp_path / "dst").read_text() == "new" and [p.name for p in tmp_path.iterdir()] == [
        "dst"
    ]


def test_a_failed_publish_restores_the_old_output_and_removes_the_new(tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("the user's")
    real_replace = files.os.replace

    def fail_on_the_swap(src, dst):
        if str(src).endswith(f".tmp-{files.os.getpid()}"):
            raise OSError("disk full")
        real_replace(src, dst)

    monkeypatch.setattr(files.os, "replace", fail_on_the_swap)
    with pytest.raises(OSError, match="disk full"), files.staged(out, overwrite=True) as tmp:
        tmp.mkdir()
        (tmp / "new.txt").write_text("new")
    assert [p.name for p in tmp_path.iterdir()] == ["out"] and (
        out / "old.txt"
    ).read_text() == "the user's"


def test_a_writer_that_wants_a_file_name_replaces_the_file_or_leaves_it(tmp_path):
    path = tmp_path / "plot.png"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError), files.replacing(path) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("crash mid-write")
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["plot.png"]
    with files.replacing(path) as tmp:
        tmp.write_bytes(b"new")
    assert path.read_bytes() == b"new" and [p.name for p in tmp_path.iterdir()] == ["plot.png"]


def test_write_json_passes_json_options_on(tmp_path):
    path = tmp_path / "r.json"
    files.write_json(path, {"x": {1, 2}, "é": 1}, default=sorted, ensure_ascii=False)
    assert path.read_text(encoding="utf-8") == '{\n  "x": [\n    1,\n    2\n  ],\n  "é": 1\n}\n'
