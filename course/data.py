"""Loaders for the real data sets the course ships (UCI Adult and German credit).

The files are stored gzip-compressed in ``course/datasets`` and checked against the SHA-256
of the original, uncompressed file every time they are read, so a damaged archive is
reported instead of silently teaching on wrong data.
"""
from __future__ import annotations

import functools
import gzip
import hashlib
import io
import json
import re
from importlib import resources

import numpy as np
import pandas as pd

ADULT_COLUMNS = [
    "age", "workclass", "fnlwgt", "education", "education_num", "marital_status",
    "occupation", "relationship", "race", "sex", "capital_gain", "capital_loss",
    "hours_per_week", "native_country", "income",
]
ADULT_NUMERIC = ["age", "fnlwgt", "education_num", "capital_gain", "capital_loss", "hours_per_week"]
# The Census Bureau's survey weight: how many people in the population a row stands for, not
# something about the person. No notebook uses it as a model feature (01 explains why).
ADULT_SURVEY_WEIGHT = "fnlwgt"

GERMAN_COLUMNS = [
    "checking_status", "duration_months", "credit_history", "purpose", "credit_amount",
    "savings", "employment_since", "installment_rate", "personal_status_sex",
    "other_debtors", "residence_since", "property", "age", "other_installment_plans",
    "housing", "existing_credits", "job", "people_liable", "telephone", "foreign_worker",
    "credit_risk",
]

_DATASETS = resources.files("course") / "datasets"


class DataIntegrityError(RuntimeError):
    """A shipped data file is missing or does not match its recorded SHA-256."""


def _expected_hashes() -> dict[str, str]:
    lines = (_DATASETS / "SHA256SUMS").read_text().splitlines()
    return {name: digest for digest, name in (line.split() for line in lines if line.strip())}


def read_verified(name: str) -> bytes:
    """Return the original bytes of shipped file ``name`` (e.g. ``"adult.data"``), checked.

    The file is stored as ``course/datasets/<name>.gz`` (the UCI files) or as it is (the
    course's own text sets). Raises DataIntegrityError, naming the file and the fix, when it
    is missing, unreadable or its content does not match ``SHA256SUMS``.
    """
    expected = _expected_hashes().get(name)
    if expected is None:
        raise DataIntegrityError(f"{name!r} is not a data set the course ships; known: {sorted(_expected_hashes())}")
    archive, plain = _DATASETS / f"{name}.gz", _DATASETS / name
    stored = archive if archive.is_file() or not plain.is_file() else plain
    shown = f"course/datasets/{stored.name}"
    fix = f"restore it with `git checkout -- {shown}` or reinstall the course package"
    try:
        data = gzip.decompress(stored.read_bytes()) if stored is archive else stored.read_bytes()
    except FileNotFoundError:
        raise DataIntegrityError(f"data file {shown} is missing: {fix}") from None
    except (OSError, EOFError) as error:
        raise DataIntegrityError(f"data file {shown} is not a readable gzip archive ({error}): {fix}") from None
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise DataIntegrityError(
            f"data file {shown} fails its checksum (expected SHA-256 {expected}, "
            f"got {actual}): the file was damaged or edited; {fix}"
        )
    return data


@functools.lru_cache(maxsize=None)
def _adult_frame(split: str) -> pd.DataFrame:
    raw = read_verified("adult.data" if split == "train" else "adult.test")
    return pd.read_csv(
        io.BytesIO(raw),
        header=None,
        names=ADULT_COLUMNS,
        skiprows=1 if split == "test" else 0,  # the test file opens with "|1x3 Cross validator"
        skipinitialspace=True,
        na_filter=False,  # keep the original "?" markers: cleaning them is part of the course
        dtype={c: "int64" for c in ADULT_NUMERIC},
    )


def load_adult(split: str = "train") -> pd.DataFrame:
    """The UCI Adult census-income data, as in the original files.

    ``split`` is ``"train"`` (adult.data, 32,561 rows) or ``"test"`` (adult.test, 16,281 rows).
    Values are the file's own: missing values are the string ``"?"`` and the test labels end
    with a ``.`` (``">50K."``); only the space after each comma is removed. Returns a new
    DataFrame each call, with the columns in ``ADULT_COLUMNS``.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    return _adult_frame(split).copy()


@functools.lru_cache(maxsize=None)
def _german_frame() -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(read_verified("german.data")), sep=" ", header=None, names=GERMAN_COLUMNS)


def load_german_credit() -> pd.DataFrame:
    """The Statlog German credit data (1,000 applicants), as in the original file.

    Categorical attributes keep their original codes (``"A11"``, ...); ``credit_risk`` is
    1 for a good and 2 for a bad credit risk. Returns a new DataFrame each call.
    """
    return _german_frame().copy()


def report_hours_per_month(features: pd.DataFrame) -> pd.DataFrame:
    """A copy of Adult ``features`` as a new upstream system would send them.

    The new system reports working time per month instead of per week, under the same
    column name: the kind of silent change that breaks hand-written rules and trained
    models alike. ``hours_per_week`` is multiplied by 52/12 and rounded.
    """
    shifted = features.copy()
    shifted["hours_per_week"] = (shifted["hours_per_week"] * 52 / 12).round().astype("int64")
    return shifted


def load_knowledge_base() -> pd.DataFrame:
    """The help centre of "Tallybook", a fictional invoicing app (course-written, notebook 07).

    82 short articles, one a row, with columns ``id`` (``"KB-001"`` ...), ``title`` and
    ``text``: the knowledge base that retrieval-augmented generation searches. Every value
    is a string. Returns a new DataFrame each call.
    """
    return pd.read_csv(io.BytesIO(read_verified("knowledge_base.csv")), dtype=str, keep_default_na=False)


def load_llm_responses() -> pd.DataFrame:
    """Raw answers to a JSON ticket-triage prompt, in the shapes large language models return (notebook 07).

    Written for the course (no model produced them), one row per answer: ``id``, ``ticket``
    (the customer's message), ``raw`` (the answer's text: clean JSON, JSON in ``` fences or prose,
    trailing commas, single quotes, missing fields, wrong types, cut-off output ...),
    ``expected_ok``, ``expected_data`` (the validated dict, or None), ``expected_bad_fields``
    (the schema fields at fault) and ``note``. ``attrs["task"]`` holds the instruction a model
    would be given and ``attrs["schema"]`` the field types it asks for, by name
    (``{"category": "str", ...}``). Returns a new DataFrame each call.
    """
    recorded = json.loads(read_verified("llm_responses.json"))
    frame = pd.DataFrame(recorded["responses"])
    frame.attrs["task"] = recorded["task"]
    frame.attrs["schema"] = dict(recorded["schema"])
    return frame


def load_support_tickets() -> pd.DataFrame:
    """358 customer-support tickets the course wrote, for text classification and search.

    Columns: ``ticket_id`` (``"T1001"``...), ``channel`` (email, web form or chat), ``text``
    (the message as the customer typed it, typos and all) and ``category``, one of
    ``billing``, ``account_access``, ``bug_report``, ``shipping``, ``feature_request`` and
    ``privacy`` (a few tickets touch two topics; the label is the main request). The file,
    ``course/datasets/support_tickets.csv``, is checked against its SHA-256 on every load.
    Returns a new DataFrame each call (all columns are strings).
    """
    return pd.read_csv(io.BytesIO(read_verified("support_tickets.csv")), dtype=str, keep_default_na=False)


_GREETING = re.compile(r"^\s*(hello support|good morning|hi team|to whom it may concern|dear \w+ service|hey there|hi there|hello|hi)[,!]\s*")


def ticket_phrasings(texts, words: int = 8, overlap: float = 0.4) -> np.ndarray:
    """A phrasing group per support ticket (an int from 0), for splits that keep near-twins together.

    The tickets were generated from about 30 phrasings a category, most used for two tickets (a
    few for one or three) with other amounts, places, names, greetings, sign-offs and typos. Two tickets are
    near-twins when, after the greeting, the sets of their first ``words`` words (lower case,
    three letters or more) overlap by at least ``overlap`` (intersection over union); a group
    is a chain of near-twins. Pass the groups to ``GroupShuffleSplit`` or ``GroupKFold`` so no
    phrasing is on both sides of a split: otherwise a test ticket's twin is in the training
    rows, and a model that memorises wording scores better than it will on new tickets.
    """
    openings = [set(re.findall(r"[a-z']{3,}", _GREETING.sub("", text.lower()))[:words]) for text in texts]
    parent = list(range(len(openings)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, first in enumerate(openings):
        for j in range(i + 1, len(openings)):
            union = first | openings[j]
            if union and len(first & openings[j]) / len(union) >= overlap:
                parent[root(j)] = root(i)
    numbers: dict[int, int] = {}
    return np.array([numbers.setdefault(root(i), len(numbers)) for i in range(len(openings))], dtype=np.int64)

