"""Experiment tracking with MLflow on a local SQLite store: offline, quiet and quick to set up.

Four things about MLflow matter in a notebook graded by nbgrader, which scores a test cell
that writes to stderr as 0:

- it sends usage telemetry over the network unless told not to, and it logs INFO lines
  (and, when a model is registered from a run, WARNING lines) to stderr through the
  ``mlflow`` logger; SQLAlchemy, under some warning filters, adds deprecation warnings.
  Importing this module turns the telemetry off, and ``quiet_mlflow`` the rest;
- logging a model without its pip requirements makes MLflow infer them in a new process,
  which can take longer than a test cell may; the inference is capped at a few seconds;
- a new SQLite store runs MLflow's ~70 schema migrations, several seconds of CPU, and
  opening any store makes alembic load every migration script again to learn the newest
  schema revision. Importing this module builds one empty store, which every store after it
  copies, and remembers the revision. Both happen at import, with the read-only setup cell,
  because alembic loads its scripts outside Python's import system: inside a test cell the
  grader's guard refuses code compiled or loaded under a library's file name. For the same
  reason, importing it runs once what the exercises make MLflow do (``_settle_mlflow``);
- relative paths resolve against the working folder: the default artifact folder
  ``./mlruns`` and ``sqlite:///mlflow.db`` both do. ``temporary_store`` works inside its own
  temporary folder, so the stores a test makes leave nothing behind.
"""
from __future__ import annotations

import atexit
import contextlib
import functools
import logging
import os
import shutil
import sqlite3
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Iterator

STORE_FILE = "mlflow.db"
REQUIREMENTS_INFERENCE_SECONDS = 3


def _discard(text: str) -> None:
    """Write nothing: where MLflow's notices go once ``quiet_mlflow`` has run."""


def _offline_quiet_settings() -> None:
    # Read by MLflow when it is imported: importing this module first keeps its telemetry
    # client from ever starting (the grader imports the tests' modules in alphabetical order).
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    os.environ["DO_NOT_TRACK"] = "true"
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # A model logged without pip_requirements makes MLflow load it in a new Python process to
    # see what it imports: 3-4 s on an idle machine, 15 s on a busy grader. Past this many
    # seconds MLflow gives up and records the flavour's default requirements instead.
    os.environ.setdefault("MLFLOW_REQUIREMENTS_INFERENCE_TIMEOUT", str(REQUIREMENTS_INFERENCE_SECONDS))


_offline_quiet_settings()


def quiet_mlflow() -> None:
    """Keep MLflow off the network (no telemetry) and off stderr (its log lines, SQLAlchemy's warnings)."""
    _offline_quiet_settings()
    from sqlalchemy.exc import SADeprecationWarning

    warnings.filterwarnings("ignore", category=SADeprecationWarning)
    warnings.filterwarnings("ignore", module=r"(mlflow|alembic|sqlalchemy|skops)(\..*)?")
    already_imported = "mlflow" in sys.modules
    import mlflow.telemetry
    from mlflow.utils.logging_utils import MLFLOW_LOGGING_STREAM

    if already_imported:  # its telemetry client was made at import: drop it now that telemetry is off
        mlflow.telemetry.set_telemetry_client()
    # MLflow's log lines and its notices ("Successfully registered model ...") go through this stream.
    # Its own disable_logging() is switched back on by MLflow after logging a model, so its
    # write is replaced instead; MLflow's errors still reach the student as exceptions.
    MLFLOW_LOGGING_STREAM.write = _discard
    for name in ("mlflow", "alembic", "sqlalchemy", "huey"):
        logging.getLogger(name).setLevel(logging.ERROR)


@functools.lru_cache(maxsize=1)
def _empty_store() -> tempfile.TemporaryDirectory:
    """A folder holding an empty, fully migrated MLflow store, built once per process (removed at exit)."""
    quiet_mlflow()
    from mlflow import MlflowClient

    folder = tempfile.TemporaryDirectory(prefix="mlflow-empty-store-")
    atexit.register(folder.cleanup)  # removed on purpose, not by the finaliser (which warns)
    MlflowClient(tracking_uri=f"sqlite:///{Path(folder.name) / STORE_FILE}").search_experiments()
    return folder


def store_uri(folder: str | os.PathLike = ".") -> str:
    """The tracking URI of the SQLite store ``mlflow.db`` in ``folder``, made (empty) if it does not exist.

    The URI is absolute, so the store stays the same when the working folder changes. A new
    store is a copy of the empty one, whose Default experiment then keeps its artifacts in
    ``mlruns/0`` under the working folder, where MLflow would have put them.
    """
    path = Path(folder).resolve() / STORE_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(_empty_store().name) / STORE_FILE, path)
        with contextlib.closing(sqlite3.connect(path)) as database, database:
            database.execute("UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0",
                             (str(Path.cwd() / "mlruns" / "0"),))
    return f"sqlite:///{path}"


def use_local_store(folder: str | os.PathLike = ".") -> str:
    """Point MLflow's tracking and model registry at ``folder/mlflow.db`` (made if missing); return its URI.

    Run artifacts (logged models) go to ``mlruns/`` in the working folder, MLflow's default.
    """
    quiet_mlflow()
    import mlflow

    uri = store_uri(folder)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


@contextlib.contextmanager
def temporary_store() -> Iterator[str]:
    """A fresh, empty MLflow store in a temporary folder, in use for the ``with`` block; yields its URI.

    Inside the block the working folder is the temporary one (so run artifacts land there too),
    and the active experiment is the store's Default one. A run left open, before the block or
    in it, is ended in its own store; afterwards the previous tracking URI, registry URI and
    working folder are restored.
    """
    quiet_mlflow()
    import mlflow

    _end_open_runs()
    previous_tracking, previous_registry = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    with tempfile.TemporaryDirectory(prefix="mlflow-store-") as folder, contextlib.chdir(folder):
        try:
            uri = use_local_store(folder)
            mlflow.set_experiment(experiment_id="0")
            yield uri
        finally:
            _end_open_runs()
            mlflow.set_tracking_uri(previous_tracking)
            mlflow.set_registry_uri(previous_registry)


def _end_open_runs() -> None:
    """End every run MLflow still has open (a run started without ``with`` and never ended)."""
    import mlflow

    while mlflow.active_run() is not None:
        mlflow.end_run()


def _remember_schema_revision() -> None:
    """Have MLflow read its migration scripts once per process for the newest schema revision (it never changes)."""
    import mlflow.store.db.utils as db_utils

    if not hasattr(db_utils._get_latest_schema_revision, "cache_info"):
        db_utils._get_latest_schema_revision = functools.cache(db_utils._get_latest_schema_revision)


def _settle_mlflow() -> None:
    """Do once, in a throwaway store, what the notebook's exercises make MLflow do.

    MLflow and SQLAlchemy build some of their state on first use: MLflow its tracing
    configuration, SQLAlchemy a generated traversal function per kind of SQL expression. Built
    here, at import, they are part of the kernel the grader's guard snapshots; built inside a
    test cell, they would look like a change the submission made to the libraries.
    """
    import mlflow
    import mlflow.pyfunc
    import mlflow.sklearn
    import numpy as np
    from mlflow import MlflowClient
    from sklearn.linear_model import LogisticRegression

    features, labels = np.array([[0.0], [1.0], [0.2], [0.9]]), np.array([0, 1, 0, 1])
    with temporary_store():
        experiment = mlflow.set_experiment("settle")
        with mlflow.start_run(run_name="C=1") as run:
            mlflow.log_param("C", 1.0)
            mlflow.log_params({"max_iter": 100})
            mlflow.log_metric("accuracy", 1.0)
            mlflow.log_metrics({"train_accuracy": 1.0})
            mlflow.set_tag("kind", "settle")
            model = LogisticRegression().fit(features, labels)
            mlflow.sklearn.log_model(model, name="model",
                                     pip_requirements=mlflow.sklearn.get_default_pip_requirements(include_skops=True))
            mlflow.sklearn.log_model(model, name="inferred")  # requirements inferred: MLflow's flavour modules load
        client = MlflowClient()
        mlflow.search_runs(experiment_names=["settle"], order_by=["metrics.accuracy DESC", "attributes.start_time ASC"])
        client.search_runs([experiment.experiment_id], order_by=["metrics.accuracy DESC"], max_results=5)
        version = mlflow.register_model(f"runs:/{run.info.run_id}/model", "settle")
        client.set_registered_model_alias("settle", "champion", version.version)
        client.get_model_version_by_alias("settle", "champion")
        client.search_model_versions("name = 'settle'")
        client.search_registered_models()
        client.get_run(run.info.run_id)
        mlflow.pyfunc.load_model("models:/settle@champion").predict(features)
        mlflow.sklearn.load_model("models:/settle@champion").predict(features)


_remember_schema_revision()
_empty_store()
_settle_mlflow()
