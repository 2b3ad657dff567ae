"""Every command that prints stops quietly when its reader has gone (`wsi-llava ... | head`)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_into_closed_pipe(*argv: str) -> subprocess.CompletedProcess:
    """Run with stdout a pipe whose reader is already closed: the first print meets EPIPE."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run([sys.executable, *argv], stdout=write_end, stderr=subprocess.PIPE, text=True,
                              cwd=ROOT, timeout=120)
    finally:
        os.close(write_end)


@pytest.mark.parametrize("argv", [
    ("-m", "wsi_llava_cli", "--help"),
    ("-m", "ui.config"),
])
def test_a_closed_pipe_ends_the_command_quietly(argv):
    done = run_into_closed_pipe(*argv)
    assert done.returncode == 141, done.stderr
    assert "Traceback" not in done.stderr and "BrokenPipeError" not in done.stderr


def test_review_stats_into_a_closed_pipe(tmp_path):
    from curation.store.review_store import ReviewStore

    ReviewStore.open(str(tmp_path / "store.sqlite")).close()
    done = run_into_closed_pipe("-m", "wsi_llava_cli", "curate", "review-stats", "--store", str(tmp_path / "store.sqlite"))
    assert done.returncode == 141 and done.stderr == ""
