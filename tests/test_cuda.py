"""CUDA paths, run where there is a GPU (`python -m pytest -m gpu tests/test_cuda.py` on a lent machine); skipped
everywhere else, CI included.

Each test is a bug the first GPU run found (2026-12-04, one H200; docs/performance.md "GPU cases"): the GAN's FID
features fed CPU images to a CUDA extractor, `lr-find` moved batches to CUDA but not the model, calibration and the
report scored the validation split on the CPU after a GPU training, and asking for more GPUs than the machine has
ended in Fabric's traceback.
"""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import pixelforge
from pixelforge.errors import PixelforgeError

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

TINY = dict(model="simple_cnn", weights="none", img_size=32, batch_size=16, strategy="full", lr=3e-3, quiet=True)


def test_classification_trains_on_cuda_and_scores_there_leaving_the_model_where_it_was(shapes_dir, tmp_path):
    from pixelforge.data.sources import Sample
    from pixelforge.tasks.classify.inference import load_run, run_inference

    result = pixelforge.train(str(shapes_dir), out=str(tmp_path / "run"), epochs=1, accelerator="cuda", **TINY)
    assert (result.run_dir / "report.html").is_file() and 0 <= result.best_val_accuracy <= 1
    loaded = load_run(result.run_dir)
    samples = [Sample(path, path.parent.name) for path in sorted((shapes_dir / "val").glob("*/*.png"))[:20]]
    on_gpu, kept, _ = run_inference(loaded, samples)
    on_cpu, _, _ = run_inference(loaded, samples, device="cpu")
    assert len(kept) == 20 and on_gpu.device.type == "cpu"
    assert next(loaded.model.parameters()).device.type == "cpu"  # Grad-CAM and export find it on the CPU
    assert torch.allclose(on_gpu, on_cpu, atol=1e-2)  # TF32 convolutions on the GPU


def test_a_gan_trains_and_scores_fid_on_cuda(tmp_path):
    data, options = _task_run("gan", tmp_path)
    result = pixelforge.train(str(data), out=str(tmp_path / "run"), accelerator="cuda", **options)
    assert np.isfinite(result.best_metric)  # the lowest FID, from features computed on the GPU


def test_lr_find_runs_its_model_on_the_device_of_its_batches(shapes_dir, tmp_path):
    from pixelforge.tasks.classify.lr_find import find_lr_for_config

    found = find_lr_for_config(tmp_path / "lr.png", data=str(shapes_dir), model="simple_cnn", weights="none",
                               img_size=32, batch_size=8, strategy="full", lr_find_steps=10, accelerator="cuda")
    assert 1e-7 <= found.suggestion <= 1 and Path(found.plot).is_file()


def test_more_devices_than_the_machine_has_is_one_line(shapes_dir, tmp_path):
    devices = torch.cuda.device_count() + 1
    with pytest.raises(PixelforgeError, match=rf"this machine has {devices - 1} CUDA device\(s\); lower --devices"):
        pixelforge.train(str(shapes_dir), out=str(tmp_path / "run"), epochs=1, devices=devices, **TINY)
    assert not (tmp_path / "run").exists()


def _tiny_photos(root: Path) -> Path:
    from skimage import data

    (root / "any_class").mkdir(parents=True)
    for i, image in enumerate([data.astronaut(), data.coffee(), data.chelsea()] * 2):
        Image.fromarray(image[60 + 20 * i:100 + 20 * i, 80:136]).save(root / "any_class" / f"p{i}.png")
    return root


def _tiny_gan_digits(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for name in ("dark", "light"):
        (root / name).mkdir(parents=True)
        for i in range(16):
            pixels = rng.integers(0, 100, (16, 16), dtype=np.uint8) + (120 if name == "light" else 0)
            Image.fromarray(pixels.astype(np.uint8)).save(root / name / f"{i:02d}.png")
    return root


def _task_run(task: str, tmp_path: Path):
    """(data folder, training options) of a seconds-long training of `task`."""
    from pixelforge.data.captions.shapes import write_shapes_captions
    from tests.tasks.test_detection import write_tiny_coco
    from tests.tasks.test_instance import write_tiny_instance
    from tests.tasks.test_segmentation import write_tiny_masks

    full = dict(weights="none", strategy="full", epochs=1, quiet=True)
    if task == "detect":
        return write_tiny_coco(tmp_path / "data", {"train": 6, "val": 3}), dict(
            full, task="detect", arch="fasterrcnn", img_size=64, batch_size=3, lr=1e-3)
    if task == "instance":
        return write_tiny_instance(tmp_path / "data", count=10), dict(full, task="instance", img_size=64,
                                                                      batch_size=4, lr=1e-3)
    if task == "segment":
        return write_tiny_masks(tmp_path / "data"), dict(full, task="segment", arch="unet", img_size=32, batch_size=4,
                                                         lr=3e-3, test_fraction=0.2)
    if task == "denoise":
        return _tiny_photos(tmp_path / "data"), dict(task="denoise", model="dncnn", depth=3, features=8, epochs=1,
                                                     crops_per_image=1, batch_size=2, img_size=32, val_fraction=0.34,
                                                     workers=0, quiet=True)
    if task == "clip":
        write_shapes_captions(tmp_path / "data", seed=3, splits=(("train", 24), ("val", 8), ("test", 12)))
        return tmp_path / "data", dict(task="clip", weights="none", img_size=32, epochs=1, batch_size=12,
                                       embed_dim=16, text_width=16, text_heads=2, text_layers=1,
                                       max_caption_words=12, quiet=True)
    return _tiny_gan_digits(tmp_path / "data"), dict(task="gan", conditional=True, img_size=16, native_size=8,
                                                     width=8, latent_dim=8, epochs=1, batch_size=8, fid_n=16,
                                                     eval_n=16, quiet=True)


def _numbers(metrics: dict) -> dict:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
            and "second" not in k}


@pytest.mark.parametrize("task", ["detect", "instance", "segment", "denoise", "clip", "gan"])
def test_each_task_trains_on_cuda_and_evaluates_there_as_on_the_cpu(task, tmp_path, monkeypatch):
    from pixelforge.engine import devices

    data, options = _task_run(task, tmp_path)
    run = pixelforge.train(str(data), out=str(tmp_path / "run"), accelerator="cuda", **options).run_dir
    # Exact float32 on both sides: TF32 convolutions would move a barely trained detector's boxes.
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    on_gpu = pixelforge.evaluate(run, out=tmp_path / "eval-gpu").metrics
    assert torch.cuda.max_memory_allocated() > before  # the model scored on the GPU
    monkeypatch.setattr(devices, "inference_device", lambda: torch.device("cpu"))
    on_cpu = pixelforge.evaluate(run, out=tmp_path / "eval-cpu").metrics
    gpu, cpu = _numbers(on_gpu), _numbers(on_cpu)
    assert gpu and gpu.keys() == cpu.keys()
    for key in gpu:
        assert gpu[key] == pytest.approx(cpu[key], rel=1e-2, abs=2e-2), key
