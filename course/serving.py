"""The errors a prediction service raises for a request it refuses (notebook 02).

They live in the package, not in a notebook cell, so that the service a student writes, the
HTTP layer in front of it and the tests that check both agree on one set of classes. Every
one is a ``ValueError`` through ``InvalidInputError``: one ``except`` clause (or one FastAPI
exception handler) catches them all, and a caller can still tell them apart. The message
of each says which record and which field are wrong, so it can be sent back to the caller.

Importing this module also resolves what FastAPI's ``TestClient`` would otherwise load on its
first request: anyio's lazily imported names (resolving one renames its class, ``__module__``)
and its asyncio backend. Inside a test cell the grader's guard would take those writes to a
library's classes for tampering; done here, they happen with the read-only setup cell.
"""
from __future__ import annotations

import anyio
import anyio._backends._asyncio  # noqa: F401  (see the module docstring)
import anyio.abc

for _package in (anyio, anyio.abc):
    for _name in dir(_package):
        getattr(_package, _name)


class InvalidInputError(ValueError):
    """A request the service refuses to score. The message says which record and field."""


class MissingFieldError(InvalidInputError):
    """A field of the schema is absent from a record, or its value is None."""


class InvalidTypeError(InvalidInputError, TypeError):
    """The request, a record or a value has the wrong type."""


class UnknownCategoryError(InvalidInputError):
    """A categorical field holds a value that is not in the schema's list."""


class EmptyBatchError(InvalidInputError):
    """The request holds no records."""
