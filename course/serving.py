"""The errors a prediction service raises for a request it refuses (notebook 02).

They live in the package, not in a notebook cell, so that the service a student writes, the
HTTP layer in front of it and the tests that check both agree on one set of classes. Every
one is a ``ValueError`` through ``InvalidInputError``: one ``except`` clause (or one FastAPI
exception handler) catches them all, and a caller can still tell them apart. The message
of each says which record and which field are wrong, so it can be sent back to the caller.
"""
from __future__ import annotations


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
