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
        (["train", "--output-dir", "a-file"], "a-file is a file"),
        (["tune", "--output-dir", "a-file/trials"], "a-file is a file"),
        (["benchmark", "--output-dir", "a-file", "--data", "x.json.gz"], "a-file is a file"),
        (["import-cgcnn", "x.pth.tar", "--atom-init", "a.json", "-o", "a-folder"],
         "a-folder is a folder"),
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


@pytest.mark.slow
def test_a_full_disk_at_a_chunk_commit_is_one_line_and_the_screen_continues(isolated):
    """The disk fills while the second chunk is written (a fail point raises ENOSPC there):
    one line naming the cause, exit 2; once space is back the same command continues to the
    table an uninterrupted screen writes."""
    from tests.conftest import fcc_primitive, rocksalt, run_zoo

    folder = isolated / "in"
    folder.mkdir()
    for n, cell in enumerate([fcc_primitive(), rocksalt(), fcc_primitive(3.52, "Ni"),
                              fcc_primitive(4.05, "Al")]):  # fmt: skip
        cell.to(filename=str(folder / f"s{n}.cif"))
    args = ["screen", "--model", "zoo-elastic-mp2024", "--input", "in", "--chunk-size", "1",
            "--workers", "1", "--no-card"]  # fmt: skip
    full = run_zoo(*args, "-o", "out", cwd=isolated, failpoint="chunk-part@2:enospc")
    assert full.returncode == 2, full.stderr
    errors = [line for line in full.stderr.splitlines() if "error: " in line]
    assert len(errors) == 1, full.stderr
    last = errors[0][errors[0].index("error: ") :]  # after the progress bar's carriage return
    assert "No space left on device" in last
    assert "the same command continues" in last and "Traceback" not in full.stderr
    again = run_zoo(*args, "-o", "out", cwd=isolated)
    assert again.returncode == 0, again.stderr
    whole = run_zoo(*args, "-o", "whole", cwd=isolated)
    assert whole.returncode == 0, whole.stderr
    import pandas as pd

    resumed = pd.read_parquet(isolated / "out" / "screen.parquet")
    pd.testing.assert_frame_equal(resumed, pd.read_parquet(isolated / "whole" / "screen.parquet"))
