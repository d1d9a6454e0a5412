"""The benchmark entry point runs end to end (smoke mode: tiny data, one repeat) so it never rots.

The ratios are not asserted: timings on a shared CI machine mean nothing; the full run is `python -m benchmarks`.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_smoke_run_prints_table_and_writes_json(tmp_path, shapes_dir):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    done = subprocess.run([sys.executable, "-m", "benchmarks", "--smoke", "--out", str(tmp_path)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "| case | measure | baseline | pixelforge | ratio |" in done.stdout
    assert "2-thread fp32 matmul" in done.stdout
    (result,) = tmp_path.glob("smoke-*.json")
    report = json.loads(result.read_text())
    assert [row["case"] for row in report["rows"]] == ["B1", "B2", "B3", "L1", "L2", "L3", "L4", "L5", "L6", "L9", "L10", "L11"]
    for row in report["rows"]:
        assert row["baseline"] and row["pixelforge"] and row["baseline_rss_mb"] >= 0 and row["pixelforge_rss_mb"] >= 0
    assert report["rows"][0]["baseline_rss_mb"] > 0  # the plain loop's model and 2 DataLoader workers
    assert report["machine"]["cores"] >= 1 and report["machine"]["matmul_gflops_2_threads"] > 0
    assert report["rows"][0]["details"]["pixelforge_path"] == "cached-features"
    assert report["rows"][1]["details"]["pixelforge_path"] == "end-to-end"
    # B1-B3's plain sides ran in a spawned interpreter, and (smoke only) all three in the same one
    children = {row["repeats"][0]["baseline"].get("pid") for row in report["rows"][:3]}
    assert len(children) == 1 and None not in children


def test_full_mode_skips_cleanly_without_data(tmp_path):
    from benchmarks.__main__ import main

    assert main(["--data", str(tmp_path / "missing"), "--out", str(tmp_path), "--only", "B3"]) == 0
    (result,) = tmp_path.glob("full-*.json")
    report = json.loads(result.read_text())
    assert report["rows"] == [] and "no data" in report["skipped"][0]


def test_unknown_case_is_a_usage_error():
    from benchmarks.__main__ import parse_args

    with pytest.raises(SystemExit) as exc:
        parse_args(["--only", "B9"])
    assert exc.value.code == 2


def test_peak_rss_sees_an_allocation():
    from benchmarks.memory import PeakRSS

    with PeakRSS() as memory:
        block = bytearray(80_000_000)
        block[::4096] = b"x" * len(block[::4096])  # touch every page so it is resident
    assert memory.added_mb > 60 and memory.peak_mb > memory.added_mb


def test_whole_process_timer_reports_the_childs_own_usage():
    from benchmarks.b1_whole_process import timed_process

    result = timed_process([sys.executable, "-c", "x = bytearray(200 * 2**20); print('done')"])
    assert result["stdout"].strip() == "done" and result["wall_s"] > 0 and result["cpu_s"] >= 0
    assert result["rss_peak_mb"] >= 200  # the child's own peak, not this process's
    with pytest.raises(RuntimeError, match="exited 3"):
        timed_process([sys.executable, "-c", "import sys; sys.exit(3)"])


def test_smoke_leaves_out_the_whole_process_case_unless_asked():
    from benchmarks.__main__ import parse_args

    assert "B1W" not in parse_args(["--smoke"]).only and "B1W" in parse_args([]).only
    assert parse_args(["--smoke", "--only", "B1W"]).only == ["B1W"]


def test_gpu_step_cases_run_tiny_and_put_the_backend_settings_back(tmp_path):
    import torch

    from benchmarks.gpu import G1_VARIANTS, main

    before = (torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    assert main(["--smoke", "--only", "G1", "--out", str(tmp_path)]) == 0
    (result,) = tmp_path.glob("gpu-smoke-*.json")
    rows = json.loads(result.read_text())["G1"]
    assert [(r["precision"], r["channels_last"], r["cudnn_benchmark"]) for r in rows] == list(G1_VARIANTS)
    assert all(r["images_per_s"] > 0 for r in rows)
    after = (torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    assert after == before == (False, True, False)  # PyTorch's defaults: later tests see no TF32 or autotuning
