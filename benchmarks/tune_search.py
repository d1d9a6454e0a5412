"""Tuning benchmarks of issue 18 on digits with simple_cnn (seconds per trial), each against its baseline:

    T1  TPE vs random search: the trial at which TPE first reaches random search's best val accuracy (fraction of
        the trials; goal <= 50% on average), per seed
    T2  pruning vs none, same sampler and seed: total epochs trained (goal: >= 40% fewer) and best val accuracy
        (goal: drops <= 0.5 points); arms median and hyperband (TPE with that pruner, against unpruned TPE) and
        random-median (random search with the median pruner, against unpruned random search: a seeded random
        sampler's draws ignore the history, so both studies try the same configurations, checked trial by trial)
    T3  two worker processes on one SQLite study: "database is locked" errors (goal 0) and trials recorded
    T4  NAS (NSGA-II, ONNX Runtime latency): Pareto-optimal architectures (goal >= 5) and their latency span (>= 3x)

    python -m benchmarks.tune_search                        # the issue's scale: 5 seeds x 40 trials (hours)
    python -m benchmarks.tune_search --seeds 2 --trials 10 --images 400 --epochs 3 --only T1,T2
    python -m benchmarks.tune_search --only T1 --seed-list 0 --arms random --worker 1   # one more random worker
    python -m benchmarks.tune_search --only T1,T2 --seed-list 0 --report-only           # figures of finished studies
    python -m benchmarks.tune_search --only T1,T2 --random-seed-offset 0 --pruners median --report-only  # round 5
    python -m benchmarks.tune_search --only T1 --seed-list 100 --arms tpe --tpe-startup 5 --tpe-candidates 24  # round 9

Random search samples with seed + --random-seed-offset (1000), so its draws are never TPE's 10 random startup
draws (TPE's startup sampler has the study's seed): with the same seed both studies tried the same first 10
configurations, and T1 then partly measured the shared draws (round five, docs/tuning-log.md).

Trials train in bf16 autocast (`--precision 32` for fp32) for 3 epochs (`--epochs`), on one thread (`--threads`).
Each trial's checkpoints/ is deleted once the trial is scored (`--keep-checkpoints` keeps them).

Numbers go to stdout (a table) and benchmarks/results/tune-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
RESULTS = Path(__file__).resolve().parent / "results"
SPACE = """lr: {low: 1.0e-4, high: 3.0e-2, log: true}
batch_size: [16, 32, 64]
weight_decay: {low: 1.0e-5, high: 1.0e-1, log: true}
dropout: {low: 0.0, high: 0.5}
label_smoothing: [0.0, 0.1]
"""


def prepare(work: Path, images: int | None, epochs: int, img_size: int, precision: str = "32",
            space_text: str = SPACE, val_unused: bool = False) -> tuple[Path, Path]:
    """Digits, base config and space files. With `images`, a CSV of that many of digits' training images (spread
    over the classes) and the whole val split (270 images), so a 0.5-point accuracy difference is more than one
    val image at any training-set size. `val_unused` also validates on the training images left out by `images`
    (never the test split): a larger val split, so one image is a smaller step of accuracy."""
    from pixelforge.data.builtin import materialize

    root = materialize("digits")
    data = str(root)
    if images:
        files = sorted((root / "train").rglob("*.png"))
        keep = files[:: max(1, len(files) // images)][:images]
        kept = set(keep)
        unused = [p for p in files if p not in kept] if val_unused else []
        rows = ([(p, "train") for p in keep] + [(p, "val") for p in sorted((root / "val").rglob("*.png"))]
                + [(p, "val") for p in unused])
        csv = work / "digits.csv"
        write_if_changed(csv, "path,label,split\n" + "".join(f"{p},{p.parent.name},{split}\n" for p, split in rows))
        data = str(csv)
    config = work / "base.yaml"
    write_if_changed(config, f"data: {data}\nmodel: simple_cnn\nweights: none\nstrategy: full\nimg_size: {img_size}\n"
                    f"epochs: {epochs}\nprecision: '{precision}'\nquiet: true\nworkers: 0\nwarmup_epochs: 0\ncalibrate: false\n")
    space = work / "space.yaml"
    write_if_changed(space, space_text)
    return config, space


def write_if_changed(path: Path, text: str) -> None:
    """Processes training other arms in the same folder read these files at every trial: never rewrite one."""
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def lean_trials() -> None:
    """Skip each trial's HTML report and model card (in this process): at seconds per trial they cost more than the
    epochs (galleries, explanations: ~5 s CPU a trial), and the search-quality numbers only read metrics.csv."""
    from pixelforge.tasks.classify import ClassifyTask

    ClassifyTask.write_report = lambda self, run: None
    ClassifyTask.write_card = lambda self, run, peak_memory=None: None


def drop_checkpoints(study, trial) -> None:
    """Optuna callback: delete a scored trial's checkpoints/ (~28 MB a trial, ~1.1 GB a 40-trial study: round nine
    filled the disk with them). The figures read only study.db and each trial's metrics.csv and summary.json."""
    run_dir = trial.user_attrs.get("run_dir")
    if run_dir:
        shutil.rmtree(Path(run_dir) / "checkpoints", ignore_errors=True)


def study_values(out: Path) -> list[dict]:
    import optuna

    study = optuna.load_study(study_name=out.name, storage=f"sqlite:///{out / 'study.db'}")
    return [{"number": t.number, "state": t.state.name, "value": t.value, "params": t.params,
             "epochs": t.user_attrs.get("epochs_run", 0)} for t in study.trials]


def cost(out: Path) -> dict:
    """Wall and process CPU seconds the study took, summed over the runs that trained it (cost.json)."""
    path = out / "cost.json"
    return json.loads(path.read_text()) if path.exists() else {}


def finished(out: Path, trials: int) -> bool:
    return (out / "study.db").exists() and sum(t["state"] in ("COMPLETE", "PRUNED") for t in study_values(out)) >= trials


def run(config: Path, space: Path, out: Path, sampler: str, pruner: str, seed: int, trials: int,
        train: bool = True, worker: int = 0, tpe: tuple[int, int] | None = None,
        keep_checkpoints: bool = False) -> list[dict] | None:
    """The study's first `trials` trials, trained first unless finished (an interrupted one continues); None when it
    is not finished and `train` is off. Its cost goes to out/cost.json, so a report-only pass has every study's cost.
    `worker` k > 0 joins a random search another process is running, sampling with its own seed (seed + 1000 k):
    random trials are independent draws, so several workers make the same search (TPE's are not: it stays one).
    `tpe`: (startup trials, EI candidates) of a TPE study, the product's sampler with those two settings. Each
    trial's checkpoints are deleted once it is scored unless `keep_checkpoints`."""
    from pixelforge.tune.samplers import build_sampler
    from pixelforge.tune.study import TuneOptions, run_study

    if worker and sampler != "random":
        raise SystemExit(f"--worker {worker}: only a random-search study takes extra workers ({sampler} is sequential)")
    if not finished(out, trials):
        if not train:
            return None
        wall, cpu = time.perf_counter(), time.process_time()
        chosen = build_sampler("tpe", seed, startup=tpe[0], candidates=tpe[1]) if sampler == "tpe" else sampler
        run_study(TuneOptions(config, space, out, sampler=chosen, pruner=pruner, seed=seed + 1000 * worker,
                              trials=trials, callbacks=() if keep_checkpoints else (drop_checkpoints,)))
        spent = cost(out)
        (out / "cost.json").write_text(json.dumps({
            "wall_s": round(spent.get("wall_s", 0) + time.perf_counter() - wall, 1),
            "cpu_s": round(spent.get("cpu_s", 0) + time.process_time() - cpu, 1)}))
    # Workers that check the count at the same moment can each start the 40th trial: the study is its first 40
    # finished trials (a failed one, an interrupted worker's, was queued again and ran under a later number).
    done = [t for t in sorted(study_values(out), key=lambda t: t["number"]) if t["state"] in ("COMPLETE", "PRUNED")]
    return done[:trials]


def best(trials: list[dict]) -> float:
    return max(t["value"] for t in trials if t["state"] == "COMPLETE")


def t1_row(seed: int, trials: int, tpe: list[dict], random: list[dict]) -> dict:
    target = best(random)
    reached = next((i + 1 for i, t in enumerate(tpe) if t["value"] is not None and t["value"] >= target), None)
    return {"seed": seed, "random_best": target, "tpe_best": best(tpe), "tpe_trials_to_reach": reached,
            "fraction": (reached or trials * 2) / trials}


def t2_row(seed: int, arm: str, unpruned: list[dict], pruned: list[dict]) -> dict:
    """`same_params`: trials whose parameters equal the unpruned study's trial of that rank (40 of 40 for
    random-median: what pruning saves and loses is then measured on the same configurations)."""
    epochs, base_epochs = sum(t["epochs"] for t in pruned), sum(t["epochs"] for t in unpruned)
    same = [a["params"] == b["params"] for a, b in zip(unpruned, pruned) if "params" in a and "params" in b]
    return {"seed": seed, "arm": arm, "pruner": ARMS[arm][1], "sampler": ARMS[arm][0], "epochs": epochs,
            "epochs_unpruned": base_epochs, "saving": 1 - epochs / base_epochs, "best": best(pruned),
            "best_unpruned": best(unpruned), "drop_points": 100 * (best(unpruned) - best(pruned)),
            "n_pruned": sum(t["state"] == "PRUNED" for t in pruned),
            "same_params": sum(same) if same else None}


# arm -> (sampler, pruner, the unpruned arm it is measured against in T2)
ARMS = {"tpe": ("tpe", "none", None), "random": ("random", "none", None), "median": ("tpe", "median", "tpe"),
        "hyperband": ("tpe", "hyperband", "tpe"), "random-median": ("random", "median", "random")}


def legacy_tpe(trials: int) -> tuple[int, int]:
    """The TPE setting of every TPE study of rounds 3-8 (a quarter of the trials random startup, 3 to 10; Optuna's 24
    EI candidates): their folders carry no setting in their names."""
    return max(3, min(10, trials // 4)), 24


def study_folder(work: Path, arm: str, seed: int, random_offset: int = 0,
                 tpe: tuple[int, int] | None = None, trials: int = 40) -> Path:
    """<sampler>[-<pruner>][-offset<k>][-startup<n>-ei<m>]-<seed>: random studies sampled with another seed get their
    own folder, so round five's studies (offset 0) and later ones never mix, and so do TPE studies of another
    setting than rounds 3-8's (`legacy_tpe`), whatever the product's default is when they run."""
    sampler, pruner, _ = ARMS[arm]
    name = sampler if pruner == "none" else f"{sampler}-{pruner}"
    if sampler == "random" and random_offset:
        name += f"-offset{random_offset}"
    if sampler == "tpe" and tpe is not None and tuple(tpe) != legacy_tpe(trials):
        name += f"-startup{tpe[0]}-ei{tpe[1]}"
    return work / f"{name}-{seed}"


def sampler_seed(arm: str, seed: int, random_offset: int) -> int:
    return seed + random_offset if ARMS[arm][0] == "random" else seed


def t1_t2(config, space, work: Path, seeds: list[int], trials: int, arms: list[str], train: bool = True,
          save=lambda rows: None, worker: int = 0, random_offset: int = 0,
          tpe_setting: tuple[int, int] | None = None, keep_checkpoints: bool = False) -> dict:
    """Per seed, each arm's study: unpruned TPE (T1's TPE side and the TPE arms' T2 baseline: one study serves
    both), random search (seed + `random_offset`; T1's target and random-median's baseline), each pruned arm. Then
    the rows of every seed whose studies are all finished (arms may be trained by separate processes, `--arms`, and
    read together by a `--report-only` pass). `save(rows)` after each study, so a cut run keeps its figures.
    `tpe_setting`: the TPE arms' (startup trials, EI candidates); None, the product's default at `trials`."""
    tpe_setting = tpe_setting or default_tpe(trials)
    rows: dict = {"T1": [], "T2": [], "cost": {}}
    for seed in seeds:
        studies = {}
        for arm in arms:
            sampler, pruner, _ = ARMS[arm]
            out = study_folder(work, arm, seed, random_offset, tpe_setting, trials)
            studies[arm] = run(config, space, out, sampler, pruner, sampler_seed(arm, seed, random_offset), trials,
                               train, worker, tpe_setting, keep_checkpoints)
            rows["cost"][out.name] = cost(out)
            save(rows)
        tpe = studies.get("tpe")
        if tpe is not None and studies.get("random") is not None:
            rows["T1"].append(t1_row(seed, trials, tpe, studies["random"]))
            print(json.dumps({"T1": rows["T1"][-1]}), flush=True)
        for arm in T2_ARMS:
            unpruned = studies.get(ARMS[arm][2])
            if unpruned is not None and studies.get(arm) is not None:
                rows["T2"].append(t2_row(seed, arm, unpruned, studies[arm]))
                print(json.dumps({"T2": rows["T2"][-1]}), flush=True)
        save(rows)
    return rows


T2_ARMS = [arm for arm, (_, _, baseline) in ARMS.items() if baseline]


def default_tpe(trials: int) -> tuple[int, int]:
    """The product's TPE setting at this budget (pixelforge.tune.samplers)."""
    from pixelforge.tune.samplers import EI_CANDIDATES, startup_trials

    return startup_trials(trials), EI_CANDIDATES


def t3(config, space, work: Path, trials: int) -> dict:
    out = work / "two-workers"
    out.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pixelforge.cli", "tune", "--config", str(config), "--space", str(space),
               "--sampler", "random", "--trials", str(trials), "--out", str(out), "--epochs", "1", "--json"]
    started = time.perf_counter()
    logs = [out / f"worker-{i}.err" for i in range(2)]
    procs = [subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log.open("w"), text=True) for log in logs]
    for p in procs:
        p.wait()
    errs = [log.read_text() for log in logs]
    values = study_values(out)
    return {"trials": len(values), "complete": sum(t["state"] == "COMPLETE" for t in values),
            "lock_errors": sum(e.count("database is locked") for e in errs),
            "exit_codes": [p.returncode for p in procs], "seconds": round(time.perf_counter() - started, 1)}


def t4(config, work: Path, trials: int, timeout: float, epochs: int) -> dict:
    from pixelforge.tune.nas import NasOptions, run_nas

    started, cpu = time.perf_counter(), time.process_time()
    # lr 0.01: trained from scratch for 3 epochs, these networks stay near chance at the default 0.001 (val accuracy
    # 0.21 vs 0.70 at 0.01 for nas_w1_d2-2-1-3_k5-3-3-5_e3-6-6-6_se1-1-0-0), and a front of near-chance accuracies
    # would rank architectures by noise.
    summary = run_nas(NasOptions(config, work / "nas", trials=trials, timeout=timeout, seed=0, population=8,
                                 overrides={"epochs": epochs, "lr": 0.01}))
    latencies = [r["latency_ms"] for r in summary["pareto"]]
    return {"pareto": len(latencies), "latency_span": max(latencies) / min(latencies) if latencies else None,
            "hypervolume": summary["hypervolume"], "n_complete": summary["n_complete"], "front": summary["pareto"],
            "seconds": round(time.perf_counter() - started, 1), "cpu_s": round(time.process_time() - cpu, 1)}


def spread(values: list[float]) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "n/a"
    return f"{statistics.mean(values):.3f} (min {min(values):.3f}, max {max(values):.3f})"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1")
    parser.add_argument("--seed-list", default=None, help="these seeds instead (comma-separated)")
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=3,
                        help="epochs a trial (3: measured in docs/tuning-log.md, the cost of the issue's trial at 6)")
    parser.add_argument("--precision", default="bf16-mixed", help="the trials' precision (32 for exact fp32)")
    parser.add_argument("--images", type=int, default=None,
                        help="training images, val kept whole (default: digits' splits as they are, 1257 / 270)")
    parser.add_argument("--val-unused", action="store_true",
                        help="with --images: also validate on the training images not trained on (never the test "
                             "split), so one val image is a smaller step of accuracy")
    parser.add_argument("--space", type=Path, default=None,
                        help="search space YAML (pixelforge tune's format; default: the space of rounds 4-6, "
                             "lr 1e-4..3e-2, batch 16/32/64, weight decay 1e-5..1e-1, dropout 0..0.5, label "
                             "smoothing 0/0.1); copied to WORK/space.yaml, which every study in WORK reads")
    parser.add_argument("--img-size", type=int, default=32)
    parser.add_argument("--pruners", default="median,hyperband,random-median",
                        help="T2's pruned arms: median, hyperband (TPE with that pruner, against unpruned TPE), "
                             "random-median (random search with the median pruner, against unpruned random search)")
    parser.add_argument("--arms", default=None,
                        help="T1/T2 studies to train, of tpe,random," + ",".join(T2_ARMS) + " (default: those "
                             "--only and --pruners need); one process per arm list runs them in parallel")
    parser.add_argument("--random-seed-offset", type=int, default=1000,
                        help="random search samples with seed + this, so it never repeats TPE's random startup "
                             "draws (TPE samples them with the seed itself); 0: round five's studies")
    parser.add_argument("--worker", type=int, default=0,
                        help="k > 0: another worker on a random-search study a process is running (--arms random; "
                             "it samples with seed + offset + 1000 k)")
    parser.add_argument("--tpe-startup", type=int, default=None,
                        help="TPE arms: random startup trials (default: the product's, startup_trials(--trials)); "
                             "a setting other than rounds 3-8's names its folders tpe[-pruner]-startup<n>-ei<m>-<seed>")
    parser.add_argument("--tpe-candidates", type=int, default=None,
                        help="TPE arms: EI candidates scored a trial (default: the product's, 24)")
    parser.add_argument("--report-only", action="store_true", help="train nothing: figures of the finished studies")
    parser.add_argument("--nas-minutes", type=float, default=15)
    parser.add_argument("--only", default="T1,T2,T3,T4")
    parser.add_argument("--full-trials", action="store_true", help="keep each trial's report and model card")
    parser.add_argument("--keep-checkpoints", action="store_true",
                        help="keep each trial's checkpoints/ (default: deleted once the trial is scored; ~1.1 GB "
                             "a 40-trial study)")
    parser.add_argument("--threads", type=int, default=1,
                        help="PyTorch threads for the trials (1: a tiny model gains little from a second thread, and "
                             "on a busy machine 2 threads wait on each other; measured in docs/tuning-log.md)")
    parser.add_argument("--work", type=Path, default=Path("runs/bench-tune"))
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    if args.val_unused and not args.images:
        parser.error("--val-unused: give --images N too (without it every training image is trained on)")
    if args.space and not args.space.is_file():
        parser.error(f"--space {args.space}: file not found")
    space_text = args.space.read_text() if args.space else SPACE
    config, space = prepare(args.work, args.images, args.epochs, args.img_size, args.precision, space_text,
                            args.val_unused)
    only = args.only.upper().split(",")
    seeds = [int(s) for s in args.seed_list.split(",")] if args.seed_list else list(range(args.seeds))
    pruners = [p for p in args.pruners.split(",") if p] if "T2" in only else []
    unknown = [p for p in pruners if p not in T2_ARMS]
    if unknown:
        parser.error(f"--pruners {','.join(unknown)}: not a T2 arm (one of {', '.join(T2_ARMS)})")
    baselines = [ARMS[p][2] for p in pruners]
    arms = args.arms.split(",") if args.arms else list(dict.fromkeys(
        ["tpe", *(["random"] if "T1" in only else []), *baselines, *pruners]))
    if not args.full_trials:
        lean_trials()
    result: dict = {"args": {k: str(v) for k, v in vars(args).items()}, "space": space_text}
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"tune-{time.strftime('%Y%m%d-%H%M%S')}.json"

    def save(rows: dict) -> None:  # after every study: a run cut short still leaves its figures
        path.write_text(json.dumps({**result, **rows}, indent=1))

    if "T1" in only or "T2" in only:
        startup, candidates = default_tpe(args.trials)
        tpe = (startup if args.tpe_startup is None else args.tpe_startup,
               candidates if args.tpe_candidates is None else args.tpe_candidates)
        result["tpe"] = {"startup": tpe[0], "ei_candidates": tpe[1]}
        result.update(t1_t2(config, space, args.work, seeds, args.trials, arms, not args.report_only, save,
                              args.worker, args.random_seed_offset, tpe, args.keep_checkpoints))
        print(f"T1 TPE trials to reach random's best (random sampled with seed + {args.random_seed_offset}), "
              f"fraction of {args.trials}: {spread([r['fraction'] for r in result['T1']])} over "
              f"{len(result['T1'])} seeds")
        for arm in pruners:
            rows = [r for r in result["T2"] if r["arm"] == arm]
            print(f"T2 {arm}: epochs saved {spread([r['saving'] for r in rows])}; best drop (points) "
                  f"{spread([r['drop_points'] for r in rows])} over {len(rows)} seeds; same params as the "
                  f"unpruned study in {[r['same_params'] for r in rows]} of {args.trials} trials")
    if "T3" in only:
        result["T3"] = t3(config, space, args.work, args.trials)
        print(f"T3 two SQLite workers: {json.dumps(result['T3'])}")
    if "T4" in only:
        result["T4"] = t4(config, args.work, 10_000, args.nas_minutes * 60, min(args.epochs, 3))
        print(f"T4 NAS: {result['T4']['pareto']} Pareto-optimal, latency span {result['T4']['latency_span']}")
    save({})
    print(f"results: {path}")


if __name__ == "__main__":
    main()
