"""Where a study lives: SQLite in the study folder by default, or any database URL (PostgreSQL for many machines).

Optuna's RDBStorage does the work. For SQLite two settings avoid "database is locked" when several workers share
one file (a known Optuna complaint, optuna#1386): the write-ahead log (readers never block the writer; the mode is
stored in the file, so it is set once) and a long busy timeout (a writer waits for the lock instead of failing at
sqlite3's default 5 s). Heartbeats mark a trial whose worker died (kill -9, a lost machine) as failed, and
`RetryHeartbeatStaleTrialCallback` queues its parameters again, so a trial is never lost silently.
"""

from __future__ import annotations

import importlib.util
import random
import sqlite3
import time
import warnings
from pathlib import Path

import optuna
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

from pixelforge.errors import PixelforgeError

HEARTBEAT_SECONDS = 10  # a running trial writes a heartbeat this often
GRACE_SECONDS = 30  # ... and counts as dead (failed, then retried) after this long without one
SQLITE_BUSY_TIMEOUT_S = 300
CONNECT_TIMEOUT_S = 10  # seconds to reach a database server before the error line


def default_url(study_dir: Path) -> str:
    return f"sqlite:///{(Path(study_dir) / 'study.db').resolve()}"


def open_storage(url: str, heartbeat: bool = True) -> RDBStorage:
    """Optuna's RDBStorage for `url`, with the SQLite settings above and dead-worker detection.

    Example:
        >>> import tempfile, pathlib
        >>> storage = open_storage(default_url(pathlib.Path(tempfile.mkdtemp())))
        >>> type(storage).__name__
        'RDBStorage'
    """
    engine_kwargs: dict = {}
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///"):])
        if not path.parent.is_dir():
            raise PixelforgeError(f"{path.parent}: folder for the study database does not exist")
        with sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT_S) as connection:
            connection.execute("PRAGMA journal_mode=WAL")
        engine_kwargs = {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}}
    elif url.startswith("postgresql"):
        # pool_pre_ping: a database restart does not kill a long study. connect_timeout: libpq otherwise waits for
        # the kernel's TCP timeout (minutes) on a host that drops packets, before the one error line.
        engine_kwargs = {"pool_pre_ping": True, "connect_args": {"connect_timeout": CONNECT_TIMEOUT_S}}
    elif url.startswith("mysql"):
        engine_kwargs = {"pool_pre_ping": True}
    try:
        return _rdb_storage(postgresql_driver(url), engine_kwargs, heartbeat)
    except ImportError as exc:
        raise PixelforgeError(f"--storage {safe_url(url)}: a driver is missing ({exc}); for PostgreSQL pip install "
                              "'pixelforge[tune]' (psycopg2-binary)") from None
    except Exception as exc:  # noqa: BLE001 - sqlalchemy raises many kinds for a bad URL or an unreachable server
        if type(exc).__name__ == "ArgumentError" and "parse" in str(exc):  # the URL itself, not the server
            raise PixelforgeError("--storage: not a database URL (give postgresql://user:password@host/db, or "
                                  "sqlite:////abs/path/study.db)") from None
        raise PixelforgeError(f"--storage {safe_url(url)}: cannot open the study database "
                              f"({type(exc).__name__}: {str(exc).splitlines()[0]})") from None


def postgresql_driver(url: str) -> str:
    """`url` with the PostgreSQL driver that is installed named, where the URL names none.

    SQLAlchemy 2.1 reads a bare `postgresql://` as psycopg 3, while `pixelforge[tune]` installs psycopg2 (the
    driver SQLAlchemy 2.0 meant), so a URL as the docs write it said "a driver is missing" beside a working
    psycopg2. A URL that names its driver (`postgresql+psycopg://`) is left as it is.
    """
    if url.startswith("postgresql://") and importlib.util.find_spec("psycopg") is None \
            and importlib.util.find_spec("psycopg2") is not None:
        return "postgresql+psycopg2://" + url[len("postgresql://"):]
    return url


def _rdb_storage(url: str, engine_kwargs: dict, heartbeat: bool) -> RDBStorage:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeats: stable since 2.9
        extra = dict(heartbeat_interval=HEARTBEAT_SECONDS, grace_period=GRACE_SECONDS,
                     heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=3)) if heartbeat else {}
        for attempt in range(5):
            try:
                return RDBStorage(url, engine_kwargs=engine_kwargs, **extra)
            except Exception as exc:  # noqa: BLE001
                # Workers started together race to create the schema; the loser sees "already exists" (or a
                # duplicate key on PostgreSQL) and finds the tables there a moment later.
                if attempt == 4 or not any(s in str(exc) for s in ("already exists", "duplicate key", "UniqueViolation", "UNIQUE constraint failed")):
                    raise
                time.sleep(0.5 + random.random())
    raise AssertionError("unreachable")


def safe_url(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001
        return "<url>"


def load_trial(url: str, study_name: str, trial_id: int, pruner):
    """A live `optuna.trial.Trial` in a process that did not create it (a spawned DDP rank): report and should_prune
    work on it as in the worker that asked for it."""
    storage = open_storage(url, heartbeat=False)
    study = optuna.load_study(study_name=study_name, storage=storage, pruner=pruner)  # the pruner is not stored
    return optuna.trial.Trial(study, trial_id)
