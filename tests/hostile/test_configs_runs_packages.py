"""Hostile configs, run folders, checkpoints, packages, outputs and uploads: one line naming the file and the
problem (exit 2), never a traceback; nothing a user made is overwritten."""

from __future__ import annotations

import errno
import io
import json
import os
import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

# One worker runs the module (loadgroup), so its package is exported once for the three damaged-package cases;
# ungrouped, the cases went to both workers and each exported it.
pytestmark = pytest.mark.xdist_group("hostile_packages")


def _config(tmp_path, text: str):
    path = tmp_path / "run.yaml"
    path.write_text(text)
    return path


CONFIGS = {  # train --config FILE
    "YAML key with a typo": ("data: digits\nepohcs: 3\n", r"epohcs.*epochs"),
    "YAML that does not parse": ("data: digits\nepochs: [3\n", r"run\.yaml"),
    "YAML that is a list": ("- data\n- digits\n", r"run\.yaml"),
    "negative epochs": ("data: digits\nepochs: -3\n", r"epochs"),
    "epochs as a word": ("data: digits\nepochs: three\n", r"epochs"),
    "unknown task": ("data: digits\ntask: colorize\n", r"colorize.*classify|classify.*colorize"),
    "negative seed": ("data: missing\nseed: -1\n", r"seed"),  # was a ValueError traceback from Fabric
    # Refused before the data is read (so `missing/` is never looked for): shared keys a task does not read, which
    # were silently ignored, and batches a model cannot train on (a traceback; a contrastive loss of 0)
    "gan with a strategy": ("task: gan\ndata: missing\nstrategy: linear\n", r"--strategy linear.*gan"),
    "gan with a schedule": ("task: gan\ndata: missing\nschedule: onecycle\n", r"--schedule onecycle.*gan"),
    "gan holding out images": ("task: gan\ndata: missing\nval_fraction: 0.3\n", r"--val-fraction 0.3.*gan"),
    "style with a model": ("task: style\ndata: missing\nmodel: resnet18\n", r"--model resnet18.*style"),
    "compress with a test split": ("task: compress\ndata: missing\ntest_fraction: 0.5\n", r"--test-fraction.*compress"),
    "compress with imagenet weights": ("task: compress\ndata: missing\nweights: imagenet\n", r"--weights imagenet"),
    "ssdlite at batch size 1": ("task: detect\ndata: missing\narch: ssdlite\nbatch_size: 1\n", r"batch-size 1.*ssdlite"),
    "clip at batch size 1": ("task: clip\ndata: missing\nbatch_size: 1\n", r"batch-size 1.*2 or more"),
    "denoise with weight decay": ("task: denoise\ndata: missing\nweight_decay: 0.05\n",
                                  r"--weight-decay 0.05: --task denoise does not read weight_decay"),
    "style with a backbone lr": ("task: style\ndata: missing\nbackbone_lr_mult: 0.5\n",
                                 r"--backbone-lr-mult 0.5.*every parameter learns at --lr"),
    "compress with an unfreezing pace": ("task: compress\ndata: missing\nunfreeze_every: 2\n",
                                         r"--unfreeze-every 2: --task compress does not read"),
    "compress with lr auto": ("task: compress\ndata: missing\nlr: auto\n", r"--lr auto: --task compress.*own optimizers"),
    "gan with range-test steps": ("task: gan\ndata: missing\nlr_find_steps: 50\n", r"--lr-find-steps 50.*no range test"),
    "gan with gradient clipping": ("task: gan\ndata: missing\ngrad_clip: 1.0\n", r"--grad-clip 1.0.*never clips"),
    "denoise with an augmentation preset": ("task: denoise\ndata: missing\naugment: strong\n",
                                            r"--augment strong: --task denoise.*random crops, flips"),
    "clip with an augmentation preset": ("task: clip\ndata: missing\naugment: light\n",
                                         r"--augment light: --task clip does not read augment"),
    "detect with augmentation knobs": ("task: detect\ndata: missing\naugment_options:\n  hflip: false\n",
                                       r"augment_options: \{'hflip': False\}: --task detect.*no knobs"),
    "caption with loader workers": ("task: caption\ndata: missing\nworkers: 2\n", r"--workers 2: --task caption.*in memory"),
    "style with a RAM budget": ("task: style\ndata: missing\nram_budget_gb: 1\n",
                                r"--ram-budget-gb 1.0: --task style.*every decoded image in RAM"),
    "detect in channels-last layout": ("task: detect\ndata: missing\nchannels_last: true\n",
                                       r"--channels-last: --task detect does not read channels_last"),
    "caption in channels-last layout": ("task: caption\ndata: missing\nchannels_last: true\n",
                                        r"--channels-last: --task caption does not read channels_last"),
    "segment with an image-only knob": ("task: segment\ndata: missing\naugment_options:\n  random_erasing: 0.25\n",
                                        r"augment_options.random_erasing 0.25: --task segment.*hflip"),
    # ...and keys a config does not read because of its other keys
    "mixup on cached features": ("data: missing\naugment_options:\n  mixup_alpha: 0.2\n",
                                 r"augment_options.mixup_alpha 0.2: --task classify.*cached features"),
    "range-test steps without lr auto": ("task: segment\ndata: missing\nlr_find_steps: 50\n",
                                         r"--lr-find-steps 50: --task segment.*--lr auto"),
    "backbone lr under linear": ("data: missing\nbackbone_lr_mult: 0.5\n", r"--backbone-lr-mult 0.5.*full or gradual"),
    "unfreezing pace without gradual": ("task: detect\ndata: missing\nunfreeze_every: 2\n",
                                        r"--unfreeze-every 2: --task detect.*--strategy gradual"),
    # our validators' own messages, without pydantic's "Value error," and the value or whole config a second time
    "a noise spec that is not one": ("task: denoise\ndata: missing\nnoise: gaussian:abc\n",
                                     r": noise: 'gaussian:abc': gaussian needs a number, gaussian:SIGMA "
                                     r"\(0-255 scale, 0 < SIGMA <= 255\)$"),
    "a continual strategy without a parent": ("data: missing\ncontinual: ewc\n",
                                              r": config: continual 'ewc' needs continue_from \(the run to continue "
                                              r"from\)$"),
    "a negative learning rate": ("data: missing\nlr: -1\n", r": lr: must be a positive number or 'auto' \(got -1\)$"),
}


@pytest.mark.parametrize("text, pattern", CONFIGS.values(), ids=CONFIGS.keys())
def test_bad_configs_are_one_line(text, pattern, tmp_path, pixelforge_cli):
    result = pixelforge_cli("train", "--config", _config(tmp_path, text), "--out", tmp_path / "run")
    assert result.code == 2 and re.search(pattern, result.error_line), result.err
    assert not (tmp_path / "run").exists()


def test_a_saved_config_reads_a_key_its_task_never_read_as_the_value_it_trained_with(tmp_path):
    """A gan run saved before val_fraction and strategy were fixed (`val_fraction: 0.2`, the old shared default) is
    read with the fixed values, so it resumes, evaluates and exports instead of being refused by check_fixed."""
    from pixelforge.tasks.config import load_config
    from pixelforge.tasks.registry import get_task

    path = _config(tmp_path, "task: gan\ndata: digits\nval_fraction: 0.2\nstrategy: linear\nepochs: 3\n")
    cfg = load_config(path)
    assert (cfg.val_fraction, cfg.strategy, cfg.epochs) == (0.0, "full", 3)
    get_task("gan").check_fixed(cfg)  # no error


def test_every_task_accepts_its_own_defaults_and_its_fixed_values_change_no_other_key():
    from pixelforge.config import RunConfig
    from pixelforge.tasks.config import build_config
    from pixelforge.tasks.registry import task_names, get_task

    for name in task_names():
        task, cfg = get_task(name), build_config(task=name, data="digits")
        task.check_fixed(cfg)  # no error
        assert set(task.fixed) <= set(RunConfig.model_fields) and not set(task.fixed) & set(task.defaults), name


def test_a_key_read_only_with_another_is_accepted_with_it_and_read_as_the_default_from_a_run_without_it(tmp_path):
    """lr_find_steps with lr: auto, backbone_lr_mult with full, unfreeze_every with gradual are read, so accepted; a
    run saved before they were refused without (lr 1e-3, linear) reads them as the defaults, so it still resumes."""
    from pixelforge.tasks.config import build_config, load_config
    from pixelforge.tasks.registry import get_task

    for task in ("classify", "segment", "caption"):
        for keys in ({"lr": "auto", "lr_find_steps": 50}, {"strategy": "full", "backbone_lr_mult": 0.5},
                     {"strategy": "gradual", "unfreeze_every": 2, "backbone_lr_mult": 0.5}):
            get_task(task).check_fixed(build_config(task=task, data="digits", **keys))  # no error
    path = _config(tmp_path, "task: classify\ndata: digits\nlr: 0.001\nlr_find_steps: 50\nstrategy: linear\n"
                             "backbone_lr_mult: 0.5\nunfreeze_every: 3\nepochs: 3\n")
    cfg = load_config(path)
    assert (cfg.lr_find_steps, cfg.backbone_lr_mult, cfg.unfreeze_every, cfg.epochs) == (100, 0.1, 1, 3)
    get_task("classify").check_fixed(cfg)  # no error


def test_mixing_knobs_are_refused_only_where_nothing_is_mixed():
    from pixelforge.errors import PixelforgeError
    from pixelforge.tasks.config import build_config
    from pixelforge.tasks.registry import get_task

    def check(**keys):
        get_task("classify").check_config(build_config(data="digits", model="simple_cnn", **keys))

    mixing = {"augment_options": {"cutmix_alpha": 1.0}}
    check(strategy="full", **mixing)  # read: no error
    check(cache_features=False, **mixing)
    check(augment="strong")  # a preset's mixing is the preset's
    with pytest.raises(PixelforgeError, match=r"^augment_options.cutmix_alpha 1.0: .*continual step"):
        check(strategy="full", continue_from="runs/parent", **mixing)


def test_python_keyword_typo_suggests_the_key():
    import pixelforge
    from pixelforge.errors import PixelforgeError

    with pytest.raises(PixelforgeError, match=r"learning_rate.*\blr\b"):
        pixelforge.train("digits", learning_rate=0.1)


@pytest.fixture
def run_copy(tiny_run, tmp_path):
    shutil.copytree(tiny_run, tmp_path / "run")
    return tmp_path / "run"


def not_a_run(run):
    shutil.rmtree(run)
    run.mkdir()
    (run / "notes.txt").write_text("hello")
    return r"not a pixelforge run"


def truncated_checkpoint(run):
    path = run / "checkpoints" / "best.ckpt"
    path.write_bytes(path.read_bytes()[:1000])
    return r"best\.ckpt"


def checkpoint_with_payload(run):
    import pickle

    class Payload:
        def __reduce__(self):
            return (print, ("pwned",))

    (run / "checkpoints" / "best.ckpt").write_bytes(pickle.dumps({"model": Payload()}))
    return r"best\.ckpt"


def config_deleted(run):
    (run / "config.yaml").unlink()
    return r"config\.yaml"


def classes_json_mangled(run):
    (run / "classes.json").write_text("{not json")
    return r"classes\.json"


RUNS = {
    "a folder that is not a run": not_a_run,
    "truncated checkpoint": truncated_checkpoint,
    "checkpoint carrying a pickle payload": checkpoint_with_payload,
    "run without config.yaml": config_deleted,
    "classes.json that is not JSON": classes_json_mangled,
}


@pytest.mark.parametrize("damage", RUNS.values(), ids=RUNS.keys())
def test_damaged_run_folders_are_refused_in_one_line(damage, run_copy, pixelforge_cli, tmp_path):
    pattern = damage(run_copy)
    image = tmp_path / "x.png"
    Image.new("RGB", (32, 32)).save(image)
    result = pixelforge_cli("predict", run_copy, image)
    assert result.code == 2 and re.search(pattern, result.error_line), result.err
    assert "pwned" not in result.out


@pytest.fixture(scope="module")
def package(tiny_run, tmp_path_factory):
    import pixelforge

    out = tmp_path_factory.mktemp("pkg") / "package"
    pixelforge.export(tiny_run, out=out)
    return out


def package_json_gone(pkg):
    (pkg / "package.json").unlink()
    return r"package"


def package_of_unknown_task(pkg):
    import json

    manifest = json.loads((pkg / "package.json").read_text())
    (pkg / "package.json").write_text(json.dumps({**manifest, "task": "teleport"}))
    return r"teleport"


def corrupt_onnx(pkg):
    (pkg / "model.onnx").write_bytes(b"\x08\x07garbage" * 10)
    return r"model\.onnx"


def _hand_edit(file: str, edit, pattern: str):
    """A damage that rewrites one of the package's JSON files by hand; these were tracebacks (AttributeError,
    KeyError, TypeError, IndexError) before the files were checked."""
    import json

    def damage(pkg):
        path = pkg / file
        path.write_text(json.dumps(edit(json.loads(path.read_text()))))
        return pattern

    return damage


def _without(key):
    return lambda data: {k: v for k, v in data.items() if k != key}


PACKAGES = {
    "package without package.json": package_json_gone,
    "package of an unknown task": package_of_unknown_task,
    "corrupt model.onnx": corrupt_onnx,
    "preprocess.json a list": _hand_edit("preprocess.json", lambda data: [data],
                                         r"preprocess\.json: holds list JSON where an object"),
    "preprocess.json without mean": _hand_edit("preprocess.json", _without("mean"), r"preprocess\.json: no 'mean'"),
    "preprocess.json img_size a word": _hand_edit("preprocess.json", lambda data: {**data, "img_size": "big"},
                                                  r"preprocess\.json: img_size 'big' is not a size"),
    "package.json a list": _hand_edit("package.json", lambda data: [data], r"package\.json: holds list JSON"),
    "package.json without a key the runtime reads": _hand_edit("package.json", _without("default_precision"),
                                                               r"package\.json: no 'default_precision'"),
    "classes.json short of names": _hand_edit("classes.json", lambda names: names[:1],
                                              r"classes\.json: 1 class names for a model of 4 classes"),
}


@pytest.mark.slow  # exports a package once for the three cases
@pytest.mark.parametrize("damage", PACKAGES.values(), ids=PACKAGES.keys())
def test_damaged_packages_are_refused_in_one_line(damage, package, tmp_path, pixelforge_cli):
    pkg = tmp_path / "pkg"
    shutil.copytree(package, pkg)
    pattern = damage(pkg)
    image = tmp_path / "x.png"
    Image.new("RGB", (32, 32)).save(image)
    result = pixelforge_cli("predict", pkg, image)
    assert result.code == 2 and re.search(pattern, result.error_line), result.err


def test_outputs_are_never_overwritten(tiny_run, tmp_path, pixelforge_cli):
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "mine.txt").write_text("precious")
    for args in (["export", tiny_run, "--out", taken], ["data", "make", "digits", "--out", taken]):
        result = pixelforge_cli(*args)
        assert result.code == 2 and str(taken.name) in result.error_line, (args, result.err)
    assert sorted(p.name for p in taken.iterdir()) == ["mine.txt"] and (taken / "mine.txt").read_text() == "precious"
    result = pixelforge_cli("evaluate", tiny_run, "--out", taken / "mine.txt")  # was a FileExistsError traceback
    assert result.code == 2 and "mine.txt: already exists" in result.error_line
    assert (taken / "mine.txt").read_text() == "precious"


def test_evaluating_a_folder_whose_every_image_is_broken_is_one_line(tiny_run, tmp_path, pixelforge_cli):
    for label in json.loads((tiny_run / "classes.json").read_text())[:2]:
        (tmp_path / "data" / label).mkdir(parents=True)
        (tmp_path / "data" / label / "cut.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(40))
    result = pixelforge_cli("evaluate", tiny_run, "--data", tmp_path / "data", "--out", tmp_path / "eval")
    assert result.code == 2 and "no readable images to evaluate" in result.err.splitlines()[-1], result.err


def test_train_into_a_used_folder_writes_beside_it(tmp_path, monkeypatch):
    """`train --out` on a run folder that exists trains into OUT-2 (and says so) rather than over it."""
    import pixelforge

    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "mine.txt").write_text("precious")
    result = pixelforge.train("digits", model="simple_cnn", weights="none", img_size=16, epochs=1, out=str(taken),
                              quiet=True, calibrate=False)
    assert result.run_dir == tmp_path / "taken-2" and (result.run_dir / "config.yaml").exists()
    assert sorted(p.name for p in taken.iterdir()) == ["mine.txt"]


def _png(width: int, height: int, noise: bool = False) -> bytes:
    buffer = io.BytesIO()
    pixels = np.random.default_rng(0).integers(0, 255, (height, width, 3), np.uint8) if noise else \
        np.zeros((height, width, 3), np.uint8)
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


UPLOADS = {  # the bytes of one upload -> the status the server answers with (decode_bytes' errors)
    "empty upload": (b"", 415),
    "text sent as an image": (b"hello, I am not a picture", 415),
    "truncated PNG": (_png(64, 64, noise=True)[:4000], 400),
    "too many pixels": (_png(3000, 3000), 413),
}


@pytest.mark.parametrize("data, status", UPLOADS.values(), ids=UPLOADS.keys())
def test_bad_uploads_get_their_status_and_one_line(data, status):
    from pixelforge.deploy.runtime.preprocess import UploadError, decode_bytes

    with pytest.raises(UploadError) as refused:
        decode_bytes(data, None, 4_000_000, "photo.png")
    assert refused.value.status_code == status
    assert str(refused.value).startswith("photo.png: ") and "\n" not in str(refused.value)


def test_multipart_without_boundary_and_with_too_many_files():
    import asyncio

    from pixelforge.deploy.serve.uploads import UploadRejected, read_uploads

    async def body(data: bytes):
        yield data

    with pytest.raises(UploadRejected) as no_boundary:
        asyncio.run(read_uploads("multipart/form-data", "10", body(b"0123456789"), "file", 1000, 2))
    assert no_boundary.value.status_code == 415
    part = b"--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n\r\nxx\r\n"
    with pytest.raises(UploadRejected) as too_many:
        asyncio.run(read_uploads("multipart/form-data; boundary=B", None, body(part * 3 + b"--B--\r\n"), "file",
                                 1000, 2))
    assert too_many.value.status_code == 413


def test_train_out_that_is_a_file_or_inside_one_is_one_line(tmp_path, pixelforge_cli):
    """Refused before the data is read (was a NotADirectoryError traceback once it had been); the file is kept."""
    (tmp_path / "notes.txt").write_text("precious")
    for out in (tmp_path / "notes.txt", tmp_path / "notes.txt" / "run"):
        result = pixelforge_cli("train", "--data", tmp_path / "missing", "--out", out)
        assert result.code == 2 and "notes.txt is a file" in result.error_line, result.err
    assert (tmp_path / "notes.txt").read_text() == "precious"


def test_resume_or_continue_as_another_task_names_the_runs_task(run_copy, tmp_path, pixelforge_cli):
    """Was one line listing every key of the run's task that the other task lacks."""
    result = pixelforge_cli("train", "--resume", run_copy, "--task", "detect")
    assert result.code == 2 and "is a classify run and resumes as one" in result.error_line, result.err
    result = pixelforge_cli("train", "--task", "compress", "--data", tmp_path / "missing", "--continue-from", run_copy)
    assert result.code == 2 and "a classify run; a compress run continues only from" in result.error_line, result.err


def test_continue_from_for_a_task_that_never_continues_says_so(run_copy, tmp_path, pixelforge_cli):
    """Caption (like most tasks) has no --continue-from: it was told to continue "only from a caption run", and a
    caption parent without --task gave "continue_from: Extra inputs are not permitted"."""
    result = pixelforge_cli("train", "--task", "caption", "--data", tmp_path / "missing", "--continue-from", run_copy)
    assert result.code == 2, result.err
    assert result.error_line == (f"error: --continue-from {run_copy}: a classify run; caption runs do not continue "
                                 f"from another run (--continue-from is for classify, compress runs)")


@pytest.fixture
def unwritable_folder(tmp_path):
    """A folder nothing can be written in: mode 0555, or (for root, whom modes do not stop) a read-only bind mount."""
    folder = tmp_path / "readonly"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    source = tmp_path / "source"
    source.mkdir()
    mounted = subprocess.run(["mount", "--bind", str(source), str(folder)], capture_output=True).returncode == 0
    if not mounted or subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], capture_output=True).returncode:
        if mounted:
            subprocess.run(["umount", str(folder)], capture_output=True)
        pytest.skip("running as root without mount: no folder here refuses a write")
    yield folder
    subprocess.run(["umount", str(folder)], capture_output=True)


@pytest.mark.parametrize("command", [
    ["evaluate", "RUN", "--out", "OUT/eval"],  # a folder made with mkdir
    ["evaluate", "RUN", "--out", "OUT/new/eval"],  # ... and its parents
    ["data", "preview", "DATA", "--out", "OUT/preview.png"],  # a file
    ["data", "make", "digits", "--out", "OUT/digits"],  # a staged folder: the error named its hidden staging name
    ["runs", "compare", "RUN", "RUN", "--out", "OUT/compare.png"],  # a file written beside and renamed
    ["train", "--data", "DATA", "--model", "simple_cnn", "--weights", "none", "--img-size", "16", "--out", "OUT/run"],
], ids=["evaluate", "evaluate-parents", "preview", "data-make", "runs-compare", "train"])
def test_an_output_in_a_read_only_folder_is_one_line_naming_the_folder(command, unwritable_folder, tiny_run,
                                                                       shapes_dir, pixelforge_cli):
    """Each was an OSError traceback ([Errno 30] Read-only file system; as a user, [Errno 13] Permission denied)."""
    names = {"RUN": str(tiny_run), "DATA": str(shapes_dir)}
    args = [names.get(a, a.replace("OUT", str(unwritable_folder))) for a in command]
    result = pixelforge_cli(*args)
    assert result.code == 2, result.err
    assert result.error_line.startswith(f"error: {unwritable_folder}: ") and "choose another output" in result.error_line
    assert list(unwritable_folder.iterdir()) == []


def test_an_unwritable_path_is_named_and_other_os_errors_stay_bugs(tmp_path):
    from pixelforge.errors import os_error_line

    (tmp_path / "locked.txt").write_text("x")
    assert os_error_line(OSError(errno.EACCES, "Permission denied", str(tmp_path / "locked.txt"))).startswith(
        f"{tmp_path / 'locked.txt'}: permission denied")
    assert os_error_line(OSError(errno.ENOSPC, "No space left", str(tmp_path / ".x.ckpt.tmp"))).startswith(
        f"{tmp_path}: no space left")
    assert os_error_line(OSError(errno.ENOENT, "No such file", str(tmp_path / "gone"))) is None  # not for this line
    assert os_error_line(OSError(errno.EROFS, "Read-only file system")) is None  # no path to name
