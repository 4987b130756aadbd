import subprocess
import sys

import pytest

from course.serving import EmptyBatchError, InvalidInputError, InvalidTypeError, MissingFieldError, UnknownCategoryError


@pytest.mark.parametrize("error", [MissingFieldError, InvalidTypeError, UnknownCategoryError, EmptyBatchError])
def test_every_refusal_is_an_invalid_input_and_a_value_error(error):
    with pytest.raises(InvalidInputError, match="record 2"):
        raise error("record 2 has no value for 'age'")
    assert issubclass(error, ValueError)


def test_a_wrong_type_is_also_a_type_error():
    assert issubclass(InvalidTypeError, TypeError)
    assert not issubclass(MissingFieldError, TypeError)


def test_a_first_request_through_the_test_client_changes_no_library_class():
    script = """
import course.serving, anyio._core._synchronization as sync
from fastapi import FastAPI
from fastapi.testclient import TestClient
before = {name: vars(cls).copy() for name, cls in vars(sync).items() if isinstance(cls, type)}
with TestClient(FastAPI()) as client:
    client.get("/")
changed = [name for name, cls in vars(sync).items() if isinstance(cls, type) and vars(cls) != before.get(name)]
print(changed)
"""
    done = subprocess.run([sys.executable, "-W", "always", "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", f"anyio's classes changed on the first request: {done.stdout}"
    assert done.stderr == "", done.stderr
