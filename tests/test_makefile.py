"""The Makefile checks the interpreter before it installs anything."""
import subprocess
import sys

from conftest import REPO


def make(*args):
    return subprocess.run(["make", "--no-print-directory", "-C", str(REPO), *args], capture_output=True, text=True)


def test_a_python_other_than_3_11_stops_the_setup_with_one_line_that_says_what_to_do(tmp_path):
    newer = tmp_path / "python3.12"
    newer.write_text('#!/bin/sh\necho "3.12.1"\n')
    newer.chmod(0o755)
    venv = tmp_path / "venv"
    for python in (str(newer), str(tmp_path / "no-such-python")):
        refused = make("setup", f"PYTHON={python}", f"VENV={venv}")
        assert refused.returncode != 0
        assert refused.stdout == ""
        (line,) = refused.stderr.splitlines()
        assert "needs Python 3.11" in line and "make setup PYTHON=python3.11" in line and python in line
        assert not venv.exists()
    assert "is 3.12.1" in make("setup", f"PYTHON={newer}", f"VENV={venv}").stderr


def test_this_python_passes_the_check():
    accepted = make("check-python", f"PYTHON={sys.executable}")
    assert accepted.returncode == 0, accepted.stderr
