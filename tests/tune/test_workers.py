"""Several workers on one study: two processes on one SQLite file, two on a real PostgreSQL server; and a study
whose worker was killed (-9) or stopped (SIGTERM) continues without losing the trial that was running."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from pixelforge.errors import PixelforgeError
from pixelforge.tune import storage as storages
from pixelforge.tune.study import TuneOptions, run_study
from tests.tune.toy import make_study_files

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def worker(config: Path, space: Path, out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tests.tune.toy", "tune", "--config", str(config), "--space",
                             str(space), "--sampler", "random", "--out", str(out), "--json", *extra], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(*procs: subprocess.Popen) -> list[str]:
    errors = []
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-2000:]
        errors.append(err)
    return errors


def check_trials(study: optuna.Study, n: int) -> None:
    """Exactly n finished trials, none failed, each with its own run folder. A trial that two workers started at the
    same moment beyond the n is allowed only as a surplus one: failed before training, without a run folder."""
    surplus = [t for t in study.get_trials() if t.user_attrs.get("surplus")]
    assert all(t.state == TrialState.FAIL and "run_dir" not in t.user_attrs for t in surplus)
    trials = [t for t in study.get_trials() if not t.user_attrs.get("surplus")]
    assert [t.number for t in trials] == list(range(n))
    assert all(t.state == TrialState.COMPLETE for t in trials)
    folders = {t.user_attrs["run_dir"] for t in trials}
    assert len(folders) == n and all((Path(f) / "summary.json").is_file() for f in folders)


def test_two_workers_share_one_sqlite_study_without_lock_errors(tmp_path):
    config, space = make_study_files(tmp_path, epochs=2)
    out = tmp_path / "study"
    out.mkdir()
    errors = finish(worker(config, space, out, "--trials", "8"), worker(config, space, out, "--trials", "8"))
    assert not any("locked" in e for e in errors)
    study = optuna.load_study(study_name="study", storage=f"sqlite:///{out / 'study.db'}")
    check_trials(study, 8)
    workers = {Path(t.user_attrs["run_dir"]).parent for t in study.trials if not t.user_attrs.get("surplus")}
    assert workers == {out / "trials"}


@pytest.fixture
def postgres(tmp_path):
    """A throwaway PostgreSQL server from Debian's packages on a free port; skips where it cannot start."""
    bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not bins:
        pytest.skip("PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin; Debian package postgresql)")
    pytest.importorskip("psycopg2", reason="psycopg2 (pip install psycopg2-binary) is needed for PostgreSQL")
    bin_dir = bins[-1].parent
    # Not under tmp_path: pytest's temporary folders are private to root, and the server runs as another user.
    home = Path(tempfile.mkdtemp(prefix="pixelforge-pg-"))
    os.chmod(home, 0o755)
    data = home / "pg"
    data.mkdir()
    as_user: list[str] = []
    if os.geteuid() == 0:  # postgres refuses to run as root: run it as the Debian package's postgres user
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser: cannot start PostgreSQL as another user")
        try:
            import pwd

            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to start the server as")
        shutil.chown(data, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    try:
        yield from _serve(bin_dir, data, as_user)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _serve(bin_dir: Path, data: Path, as_user: list[str]):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    init = subprocess.run([*as_user, str(bin_dir / "initdb"), "-D", str(data), "-U", "pf", "--auth=trust"],
                          capture_output=True, text=True)
    if init.returncode != 0:
        pytest.skip(f"initdb failed: {init.stderr.strip()[-300:]}")
    start = subprocess.run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-w", "-l", str(data / "log"), "-o",
                            f"-p {port} -k {data} -c listen_addresses=127.0.0.1", "start"], capture_output=True,
                           text=True)
    if start.returncode != 0:
        pytest.skip(f"PostgreSQL did not start: {start.stderr.strip()[-300:]}")
    try:
        subprocess.run([*as_user, str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "pf",
                        "optuna"], check=True, capture_output=True)
        yield f"postgresql+psycopg2://pf@127.0.0.1:{port}/optuna"
    finally:
        subprocess.run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True)


def test_two_workers_share_one_study_on_a_real_postgresql_server(tmp_path, postgres):
    config, space = make_study_files(tmp_path, epochs=2)
    # Two "machines": each worker writes its trials' run folders in its own study folder. The workers get the URL as
    # docs/tuning.md writes it, without a driver (SQLAlchemy 2.1 would pick psycopg 3 for it).
    url = postgres.replace("postgresql+psycopg2://", "postgresql://")
    a = worker(config, space, tmp_path / "a", "--trials", "6", "--storage", url, "--study", "shared")
    b = worker(config, space, tmp_path / "b", "--trials", "6", "--storage", url, "--study", "shared")
    finish(a, b)
    study = optuna.load_study(study_name="shared", storage=postgres)
    check_trials(study, 6)
    per_worker = [len(list((tmp_path / w / "trials").iterdir())) for w in "ab"]
    assert sum(per_worker) == 6


def wait_for_running_trial(db: Path, proc: subprocess.Popen, timeout: float = 600) -> None:
    """Until a trial is running and its training has begun (its config is written, so Optuna's heartbeat for it is
    recorded). Read with sqlite3, not Optuna: opening an RDBStorage would race the worker creating the schema."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        try:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as connection:
                numbers = [n for (n,) in connection.execute("SELECT number FROM trials WHERE state = 'RUNNING'")]
        except sqlite3.Error:  # not created yet
            numbers = []
        if any((db.parent / "trials" / str(n) / "config.yaml").exists() for n in numbers):
            return
        time.sleep(0.2)
    raise AssertionError("no trial started")


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "sigterm"])
def test_a_killed_study_continues_and_retries_the_running_trial(tmp_path, monkeypatch, toy_task, how):
    config, space = make_study_files(tmp_path, epochs=40)
    out = tmp_path / "study"
    proc = worker(config, space, out, "--trials", "3", "--seed", "0")
    wait_for_running_trial(out / "study.db", proc)
    proc.send_signal(how)
    _, err = proc.communicate(timeout=600)
    if how == signal.SIGTERM:
        assert proc.returncode == 128 + signal.SIGTERM and "run the same command to continue" in err
    monkeypatch.setattr(storages, "GRACE_SECONDS", 1)  # a dead worker's trial counts as stale after 1 s here
    time.sleep(1.5)
    summary = run_study(TuneOptions(config, space, out, sampler="random", trials=3, seed=0))
    study = optuna.load_study(study_name="study", storage=f"sqlite:///{out / 'study.db'}")
    lost = [t for t in study.trials if t.state == TrialState.FAIL]
    assert summary["n_complete"] == 3 and len(lost) == 1  # the interrupted trial is marked failed...
    retried = [t for t in study.trials if t.state == TrialState.COMPLETE and t.params == lost[0].params]
    assert retried and retried[0].number > lost[0].number  # ...and its parameters trained again


def test_a_trial_started_after_the_study_is_full_is_given_back_without_training(tmp_path, toy_task, caplog):
    """Two workers can count N-1 trials at the same moment and both start one; the later one must not train."""
    from pixelforge.tune import space as spaces
    from pixelforge.tune.report import trials_table
    from pixelforge.tune.study import TrialFailed, _Objective, summarize

    config, space = make_study_files(tmp_path, epochs=1)
    opts = TuneOptions(config, space, tmp_path / "study", sampler="random", trials=2)
    (opts.out / "trials").mkdir(parents=True)
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'race.db'}", study_name="race")
    study.ask(), study.ask()  # two trials already running on other workers: the budget of 2 is taken
    study.enqueue_trial({"lr": 0.01, "hidden": 8}, user_attrs={"requeued_from": 0})  # a retry waiting in the queue
    objective = _Objective(opts, spaces.load_space(space), "val_loss", "min", "sqlite://", "race",
                           optuna.pruners.NopPruner(), target=2)
    seen = []  # what `optimize` reads to skip the trial instead of counting a failure: its own callback's trial
    optuna.logging.enable_propagation()  # Optuna's logger keeps its lines from the root one, where caplog listens
    try:
        study.optimize(objective, n_trials=1, catch=(TrialFailed,), callbacks=[lambda _, trial: seen.append(trial)])
    finally:
        optuna.logging.disable_propagation()
    surplus = study.trials[2]
    assert seen[0].user_attrs["surplus"] and surplus.state == TrialState.FAIL and surplus.user_attrs["surplus"]
    assert not any((opts.out / "trials").iterdir())  # nothing trained
    assert "Trial 2 failed" not in caplog.text
    from pixelforge.tune.study import _quiet_surplus

    assert 2 not in _quiet_surplus.numbers  # forgotten once its lines were dropped: another study's trial 2 logs
    waiting = [t for t in study.get_trials() if t.state == TrialState.WAITING]
    assert [t.params or t.system_attrs["fixed_params"] for t in waiting] == [{"lr": 0.01, "hidden": 8}]
    assert waiting[0].user_attrs == {"requeued_from": 0}  # the retry is still queued for a later start
    assert summarize(study)["n_failed"] == 0
    assert "not run (study full)" in trials_table(study, opts.out)


def test_a_bare_postgresql_url_as_the_docs_write_it_finds_the_installed_driver():
    """SQLAlchemy 2.1 reads `postgresql://` as psycopg 3; with psycopg2 (what `pixelforge[tune]` installs) the URL of
    docs/tuning.md said "a driver is missing". Port 1 is closed: the driver is found and the connection refused."""
    import importlib.util

    if importlib.util.find_spec("psycopg2") is None and importlib.util.find_spec("psycopg") is None:
        pytest.skip("no PostgreSQL driver installed (pip install psycopg2-binary)")
    with pytest.raises(PixelforgeError) as error:
        storages.open_storage("postgresql://user:secret@127.0.0.1:1/optuna")
    message = str(error.value)
    assert "cannot open the study database" in message and "driver is missing" not in message, message
    assert "secret" not in message
