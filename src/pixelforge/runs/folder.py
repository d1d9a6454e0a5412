"""The run folder: where a run's config, metrics, checkpoints and report live, never silently overwritten.

    runs/NAME/config.yaml  classes.json  metrics.csv  summary.json  tensorboard/  checkpoints/{last,best}.ckpt
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import pickle
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from pixelforge.errors import PixelforgeError
from pixelforge.formats import check_format, run_stamp
from pixelforge.output_names import current_umask, new_file_path, numbered

log = logging.getLogger(__name__)


def new_run_dir(out: str | Path) -> Path:
    """Create `out`, or `out-2`, `out-3`... when it already exists: a finished run is never overwritten.

    A folder is claimed by creating its `checkpoints/`, which only one process can do (mkdir is atomic), so two
    trainings started at once with the same `--out` get two folders instead of writing into one.
    """
    for candidate in numbered(Path(out), keep_suffix=False):
        if candidate.exists() and any(candidate.iterdir()):
            continue
        try:
            (candidate / "checkpoints").mkdir(parents=True)
        except FileExistsError:  # another process claimed it between the look and the mkdir
            continue
        return candidate


def check_run_out(out: str | Path) -> None:
    """Refuse a run folder `out` that is, or lies inside, an existing file (before: a NotADirectoryError traceback
    once the data was read); a folder that exists is fine: `new_run_dir` numbers past it."""
    out = Path(out)
    for path in (out, *out.parents):
        if path.exists() and not path.is_dir():
            raise PixelforgeError(f"--out {out}: {path} is a file, not a folder; choose a new folder for the run")


def discard_unstarted_run(run: Path) -> None:
    """Remove a run folder that training left before its first checkpoint, so a mistake found while the data is
    decoded leaves nothing behind, as one found before the folder existed does. A folder with a checkpoint stays:
    it can be resumed."""
    checkpoints = run / "checkpoints"
    if checkpoints.is_dir() and any(checkpoints.iterdir()):
        return
    shutil.rmtree(run, ignore_errors=True)


@contextmanager
def training_lock(run: Path):
    """Hold `run` for one training for the block: another `train` in the same folder meanwhile (`--resume` from a
    second terminal while the first still trains) is one line, instead of both appending the same epochs to
    metrics.csv and overwriting each other's checkpoints. An flock on the folder itself: the system lets go when the
    process ends, however it ends (kill -9 too), so no lock file is left behind to clear by hand. Where there is no
    flock (Windows, some network file systems) nothing is locked."""
    try:
        import fcntl
    except ImportError:  # Windows
        yield
        return
    fd = os.open(run, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise PixelforgeError(f"{run}: another process is training this run folder now; wait for it to end (or "
                                  f"stop it), then resume") from None
        except OSError:  # the file system has no flock
            pass
        yield
    finally:
        os.close(fd)


def output_path(out: str | Path | None, default: str | Path) -> Path:
    """Where a command writes its file or folder: `--out` if it is new (or an empty folder), else an error naming
    it; without `--out`, the default name, numbered past earlier outputs. Nothing a user made is overwritten."""
    if out is None:
        return new_file_path(default)
    out = Path(out)
    if out.is_file() or (out.is_dir() and any(out.iterdir())):
        raise PixelforgeError(f"{out}: already exists; choose a new --out (outputs are never overwritten)")
    refuse_path_inside_a_file(out)
    return out


def new_output_file(out: str | Path) -> Path:
    """`--out` for one file a command writes after its work (`compress`, `stylize`): refused at once if anything is
    there or a folder on its way is a file, so the work is not done only to be refused (or end in a traceback)."""
    out = Path(out)
    if out.exists():
        raise PixelforgeError(f"{out}: already exists; choose a new --out (outputs are never overwritten)")
    refuse_path_inside_a_file(out)
    return out


def refuse_path_inside_a_file(out: Path) -> None:
    """One line for `--out a.png/b.png` where a.png is a file (writing it was a FileExistsError traceback)."""
    blocker = next((p for p in out.parents if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise PixelforgeError(f"{out}: {blocker} is a file, not a folder; choose an --out in a folder")


EVALUATION_FILE = "evaluation.json"  # what an eval folder scored: its data, split and options


def evaluation_dir(out: str | Path | None, default: Path, request: dict) -> Path:
    """The folder an evaluation writes to, created: `out` if given, else `default` (RUN/eval-test).

    A default folder holding another evaluation (other data, split or options, as its evaluation.json says) is
    kept, and the next free number is used (`evaluate RUN --data A`, then `--data B`: RUN/eval-all, RUN/eval-all-2).
    One holding the same evaluation is rewritten, so the report and a repeated command refresh their own folder
    instead of adding copies.
    """
    request = json.loads(json.dumps(request, sort_keys=True, default=str))
    if out is None:
        for out in numbered(Path(default), keep_suffix=False):
            if not out.exists() or _evaluation_request(out) == request:
                break
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / EVALUATION_FILE, request)
    return out


def _evaluation_request(folder: Path) -> dict | None:
    try:
        return json.loads((folder / EVALUATION_FILE).read_text())
    except (OSError, ValueError):
        return None  # a folder from before evaluation.json, or not an evaluation's: never rewritten


def data_key(data: str | None) -> str | None:
    """`--data` as an evaluation's identity: a path made absolute (two spellings of one folder are one), a built-in
    name as given, None for the run's own data."""
    if data is None or not Path(data).exists():
        return data
    return str(Path(data).resolve())


def atomic_write_bytes(path: Path, write) -> None:
    """Write via a temp file in the same folder and rename, so a crash never leaves a half-written file.

    mkstemp makes the file 0600; it gets the mode `open()` would have given it (0666 less the umask), so reports,
    summaries and packages stay readable by whoever the folder is shared with."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            if hasattr(os, "fchmod"):  # POSIX; Windows files have no such mode bits
                os.fchmod(handle.fileno(), 0o666 & ~current_umask())
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.filename is None:  # a full disk met by write(): named, for its line
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise


# torch is imported in the two checkpoint functions only: `pixelforge train` reads its config, data and run folder
# before torch is imported, and decodes the photos meanwhile (data/prefetch.py).


def discard_partial_writes(folder: Path) -> list[Path]:
    """Remove what `atomic_write_bytes` left in `folder` when its process was killed mid-write (`.last.ckpt.x1y2`:
    never a whole file, and as large as the checkpoint it was becoming); returns them. Only while nothing else writes
    there: a resume, which holds its run folder (`training_lock`)."""
    partial = sorted(folder.glob(".*.ckpt.*"))
    for path in partial:
        path.unlink(missing_ok=True)
    return partial


def save_checkpoint(state: dict, path: Path) -> None:
    """Write `state` atomically, stamped with the pixelforge and run format that wrote it (`formats.py`)."""
    import torch

    state = {**state, **run_stamp()}
    atomic_write_bytes(path, lambda handle: torch.save(state, handle))


def _numpy_globals() -> dict:
    """The pickle globals numpy arrays and scalars need: what checkpoints written before the RNG states became
    plain lists hold (numpy's RNG keys; metrics kept as numpy floats). numpy 1 and 2 name the module differently."""
    import numpy as np

    reconstruct = np.ndarray.__reduce__(np.zeros(1))[0]  # numpy's private `_reconstruct`, whatever its module
    scalar = np.float64(0).__reduce__()[0]  # likewise `scalar`, how a numpy number is pickled
    return {"numpy.core.multiarray._reconstruct": reconstruct, "numpy._core.multiarray._reconstruct": reconstruct,
            "numpy.core.multiarray.scalar": scalar, "numpy._core.multiarray.scalar": scalar,
            "numpy.ndarray": np.ndarray, "numpy.dtype": np.dtype}


def _numpy_dtype_classes() -> list:
    """numpy 2's per-dtype classes (`dtypes.UInt32DType`...): a pickled dtype sets their state, so they are
    allow-listed too; booleans, integers and floats only, never the object dtype."""
    import numpy as np

    return sorted({type(np.dtype(code)) for code in "?bBhHiIlLqQefdg"}, key=str)


def load_checkpoint(path: Path) -> dict:
    """Load a checkpoint with `weights_only=True`: tensors, numbers, strings and containers only, so a run folder
    someone sent you cannot run code. Older checkpoints' numpy arrays and numbers are the one exception. One written
    in a newer run format than this pixelforge reads is one line naming its writer and the upgrade."""
    saved = _read_checkpoint(Path(path))
    if isinstance(saved, dict):
        check_format(path, saved, "run")
    return saved


def _read_checkpoint(path: Path) -> dict:
    import torch

    path = Path(path)
    if not path.is_file():
        run, saved = path.parent.parent, any(path.parent.glob("*.ckpt"))
        if path.parent.name == "checkpoints" and (run / "config.yaml").is_file() and not saved:
            raise PixelforgeError(f"{run}: no checkpoint yet (its training stopped before saving one); resume it with "
                                  f"`pixelforge train --resume {run}`")
        raise PixelforgeError(f"{path}: checkpoint not found; is this a pixelforge run folder?")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first_error = exc
    except (RuntimeError, EOFError, OSError, ValueError) as exc:  # torch's zip reader on a cut or mangled file
        # torch's first sentence says what is wrong; the rest ("This is an internal miniz error...") is for its devs
        lines = str(exc).strip().splitlines()  # an empty file's EOFError has no message at all
        reason = lines[0].split(". ")[0][:160] if lines else ("0 bytes" if path.stat().st_size == 0
                                                              else type(exc).__name__)
        other = {"best.ckpt": "last.ckpt", "last.ckpt": "best.ckpt"}.get(path.name)
        instead = f", or use {path.parent.name}/{other} beside it" if other and (path.parent / other).is_file() else ""
        raise PixelforgeError(f"{path}: cannot read the checkpoint, it is truncated or corrupt ({reason}); copy it "
                              f"again{instead}") from None
    try:
        unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # not a zip checkpoint at all: report what the safe load said
        unsafe = None
    allowed = _numpy_globals()
    if unsafe and all(name in allowed for name in unsafe):
        try:
            with torch.serialization.safe_globals([*[(allowed[name], name) for name in unsafe],
                                                   *_numpy_dtype_classes()]):
                return torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:  # e.g. a numpy array of Python objects
            first_error, unsafe = exc, None
    held = ", ".join(sorted(unsafe)) if unsafe else str(first_error).strip().splitlines()[-1][:200]
    raise PixelforgeError(f"{path}: refuses to load: it holds Python objects other than tensors ({held}), which "
                          f"could run code when loaded (weights_only); use only checkpoints pixelforge wrote")


def trained_checkpoint(run: Path, name: str = "best.ckpt") -> Path:
    """`run/checkpoints/name`, or last.ckpt, with a warning, for a run stopped before its first epoch ended: it has
    no best.ckpt yet, and its weights where it stopped are what it has (Ultralytics evaluates its last.pt then)."""
    path, last = Path(run) / "checkpoints" / name, Path(run) / "checkpoints" / "last.ckpt"
    if name == "best.ckpt" and not path.exists() and last.exists():
        log.warning("%s: stopped before its first epoch ended, so it has no best.ckpt: using checkpoints/last.ckpt, "
                    "its weights where it stopped (`pixelforge train --resume %s` finishes the training)", run, run)
        return last
    return path


def write_json(path: Path, data) -> None:
    atomic_write_bytes(path, lambda handle: handle.write(json.dumps(data, indent=2).encode()))


def read_json(path: Path):
    """A JSON file of a run or package; a missing or mangled one is a one-line error naming it."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise PixelforgeError(f"{path}: not found; the run or package folder is incomplete") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PixelforgeError(f"{path}: not valid JSON ({exc}); the run or package folder is damaged") from None


def append_metrics(path: Path, row: dict) -> None:
    """Add one epoch's row. A row whose columns differ from the file's (a run resumed by a version that logs other
    columns) rewrites the file with the union of both, empty where a row has no value, so no value shifts column."""
    header = _header(path)
    if header is not None and header != list(row):
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
        columns = header + [key for key in row if key not in header]
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows([*rows, row])
        # Rewritten whole, never in place: a full disk midway would have lost every epoch's row.
        atomic_write_bytes(path, lambda handle: handle.write(text.getvalue().encode()))
        return
    with open(path, "a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(row))
        if header is None:
            writer.writeheader()
        writer.writerow(row)


def _header(path: Path) -> list[str] | None:
    if not path.exists():
        return None
    with open(path, newline="") as handle:
        return next(csv.reader(handle), None)


def read_metrics(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path, newline="") as handle:
        return [{k: float(v) if v not in ("", None) else None for k, v in row.items()} for row in csv.DictReader(handle)]


def require_run(run_dir: str | Path) -> Path:
    if not isinstance(run_dir, (str, os.PathLike)):  # `pixelforge.evaluate(None)`: was a TypeError from Path
        raise PixelforgeError(f"run folder: {run_dir!r} given; pass the folder `train --out` made (a path, "
                              f"`TrainResult.run_dir`)")
    path = Path(run_dir)
    if not (path / "config.yaml").is_file() or not (path / "classes.json").is_file():
        raise PixelforgeError(f"{path}: not a pixelforge run folder (no config.yaml/classes.json); pass the folder `train --out` made")
    return path
