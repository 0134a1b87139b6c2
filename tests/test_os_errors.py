"""Operating-system failures and misplaced outputs end in one line naming the path and the
cause, checked before any work; a closed pipe ends a command quietly (issue 28, item 6)."""

from __future__ import annotations

import errno
import os
import sys

import pytest

from zoo.cli import main, os_error_line


def test_output_paths_are_checked_before_any_work(isolated, capsys):
    (isolated / "a-folder").mkdir()
    (isolated / "a-file").write_text("x")
    cases = [
        (["predict", "--model", "no-such-model", "--input", "x", "-o", "a-folder"],
         "a-folder is a folder"),
        (["ensemble", "m1.zoo.pt", "m2.zoo.pt", "-o", "a-folder"], "a-folder is a folder"),
        (["predict", "--model", "no-such-model", "--input", "x", "-o", "a-file/out.csv"],
         "a-file is a file"),
        (["screen", "--model", "no-such-model", "-o", "a-file"], "a-file is a file"),
    ]  # fmt: skip
    for argv, words in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("error: ") and words in err and err.count("\n") == 1, (argv, err)


def test_the_same_member_twice_is_refused(isolated, capsys):
    from zoo.commands.ensemble import member_sources

    (isolated / "run").mkdir()
    (isolated / "run" / "model.zoo.pt").write_bytes(b"")
    with pytest.raises(ValueError, match="given twice"):
        member_sources(["run", "run/model.zoo.pt"])


def test_os_errors_name_the_path_and_a_full_disk_says_how_to_continue():
    full = OSError(errno.ENOSPC, "No space left on device", "out/chunks/00003.parquet")
    line = os_error_line(full)
    assert line.startswith("out/chunks/00003.parquet: No space left on device")
    assert "the same command continues" in line
    moved = OSError(errno.EXDEV, "Invalid cross-device link", "a.part", None, "b")
    assert os_error_line(moved) == "a.part -> b: Invalid cross-device link"


def test_a_closed_pipe_ends_a_command_quietly(monkeypatch, capsys):
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader went away (zoo pretrained --card NAME | head -1)
    stream = open(write_end, "w")  # noqa: SIM115
    monkeypatch.setattr(sys, "stdout", stream)
    assert main(["pretrained", "--card", "zoo-elastic-mp2024"]) == 0
    monkeypatch.undo()
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.slow
def test_an_unreachable_scheduler_is_one_line(isolated, capsys):
    argv = ["screen", "--model", "zoo-elastic-mp2024", "-o", "out", "--engine", "dask",
            "--scheduler", "tcp://127.0.0.1:1"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "cannot reach the Dask scheduler tcp://127.0.0.1:1 in 10 s" in err
    assert err.count("\n") == 1
