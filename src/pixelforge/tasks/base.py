"""`Task`: everything a task supplies to the engine, the API and the CLI, in one class.

The engine (`pixelforge.engine`) trains whatever `build_setup` returns; the API functions (`train`, `evaluate`,
`predict`, `export`) and the CLI ask a task for its data, model, metrics, reports and packages through these
methods, so adding a task never adds a branch anywhere else. Methods a task does not support raise a one-line
`PixelforgeError` that names the task, so `pixelforge predict` on a task without prediction says so plainly.

The heavy modules (torch, models, metrics) are imported inside the methods of each task's class: importing the
registry stays cheap, which keeps `pixelforge --help` fast.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from pixelforge.config import RunConfig
from pixelforge.errors import PixelforgeError


# The fixed keys of a task that trains its own network whole, at one rate (denoise, compress, style, gan): no part
# learns slower (backbone_lr_mult) or later (unfreeze_every) than another.
WHOLE_NETWORK = {"backbone_lr_mult": 1.0, "unfreeze_every": 1}
WHOLE_NETWORK_WHY = {"backbone_lr_mult": "every parameter learns at --lr",
                     "unfreeze_every": "every layer learns from the first epoch"}
# The fixed data keys of a task that decodes every image into RAM up front (all but classify, segment, detect,
# instance, whose datasets decode on the fly past the budget).
IN_RAM = {"ram_budget_gb": 4.0}
IN_RAM_WHY = {"ram_budget_gb": "it keeps every decoded image in RAM"}
# ...and of one whose batches are tensors already in memory, with no per-image work for DataLoader workers.
IN_MEMORY_BATCHES = {"workers": 0}
IN_MEMORY_BATCHES_WHY = {"workers": "its batches are tensors already in memory"}
# ...and of one whose optimizers are its own (compress, gan): no range test, so `--lr auto` is refused too.
OWN_OPTIMIZERS = {"lr_find_steps": 100}
OWN_OPTIMIZERS_WHY = {"lr_find_steps": "its own optimizers get no range test"}


class Task:
    name: str = ""
    description: str = ""
    config_class: type = RunConfig  # the task's pydantic config: RunConfig plus its own keys, `task: Literal[name]`
    # Run-config defaults that differ for this task, applied to keys the user did not set (YAML or CLI).
    defaults: dict = {}
    # The validation metric that picks best.ckpt, with its direction, and how the CLI names it.
    monitor: str = "val_loss"
    monitor_mode: str = "max"
    monitor_label: str = ""
    # Tasks measured faster in bf16 mixed precision (with fp32 depthwise convolutions) at the same accuracy.
    bf16_measured: bool = False
    # Shared keys this task does not read, with the value it always trains as (a default too, tasks/config.py):
    # another value is refused by `check_fixed` instead of being silently ignored (`--task gan --strategy linear`).
    fixed: dict = {}
    # Why, for a fixed key whose value alone does not say what the task does instead ("every parameter learns at
    # --lr"); the refusal says "it always trains with VALUE" otherwise.
    fixed_why: dict = {}
    # Whether `--strategy` chooses which pretrained parts learn (models/finetune.py's strategies): then
    # `backbone_lr_mult` is read only by full and gradual, and `unfreeze_every` only by gradual (`unread`).
    fine_tunes: bool = False

    # ---- training -------------------------------------------------------------------------------------------
    def check_fixed(self, cfg) -> None:
        """Refuse a value of a key this task does not read (`fixed`), or that this config does not read (`unread`,
        when not the default: an unset key cannot be told from its default), before a run folder exists."""
        for key, value in self.fixed.items():
            given = getattr(cfg, key)
            if given != value:
                why = self.fixed_why.get(key, f"it always trains with {value}")
                raise PixelforgeError(f"{_as_given(key, given)}: --task {self.name} does not read {key} ({why}); "
                                      f"leave it out")
        if cfg.lr == "auto" and "lr_find_steps" in self.fixed:  # else the engine's refusal, after the data is decoded
            raise PixelforgeError(f"--lr auto: --task {self.name} configures its own optimizers, which the range test "
                                  f"cannot tune; give a number")
        for key, when in self.unread(cfg).items():
            given = getattr(cfg, key)
            if given != self.default(cfg, key):
                raise PixelforgeError(f"{_as_given(key, given)}: --task {self.name} reads {key} only {when}; "
                                      f"leave it out")

    def unread(self, cfg) -> dict[str, str]:
        """Shared keys `cfg` does not read because of its other values, each with when it would: `check_fixed`
        refuses a value other than the default, and `load_config` reads a saved one as the default."""
        when = {}
        if cfg.lr != "auto":  # the engine's range test (engine/fit.py) is the only reader
            when["lr_find_steps"] = "with --lr auto (the range test before training)"
        if self.fine_tunes and cfg.strategy == "linear":  # models/finetune.py's param_groups: no pretrained group
            when["backbone_lr_mult"] = "with --strategy full or gradual (linear keeps the pretrained part frozen)"
        if self.fine_tunes and cfg.strategy != "gradual":
            when["unfreeze_every"] = "with --strategy gradual"
        return {key: text for key, text in when.items() if key not in self.fixed}

    def default(self, cfg, key: str):
        """What `key` resolves to when the user does not set it (tasks/config.py's `build_config`)."""
        return self.defaults.get(key, self.fixed.get(key, type(cfg).model_fields[key].default))

    def check_config(self, cfg) -> None:
        """Refuse a config this task cannot train, before a run folder exists (one-line errors)."""

    def check(self, cfg) -> None:
        """Everything `cfg` alone is refused for, before any folder exists: `check_fixed`, then `check_config`."""
        self.check_fixed(cfg)
        self.check_config(cfg)

    def prepare_data(self, cfg) -> tuple:
        """(data source, class names) for `cfg.data`."""
        raise self._unsupported("training")

    def check_data(self, cfg, source) -> None:
        """Refuse data this task cannot train on, before a run folder exists."""

    def start_decoding(self, cfg, source) -> None:
        """Optional: begin decoding `source`'s images in the background (data/prefetch.py) while the engine imports
        torch and starts; `build_setup`'s datasets then take the pixels. Called before torch is imported."""

    def build_setup(self, cfg, source, classes: list[str], fabric, progress):
        """The engine's `TaskSetup`: model, datasets, the step object, optimizers' parameter groups."""
        raise self._unsupported("training")

    def monitor_of(self, cfg) -> tuple[str, str]:
        """(metrics.csv column, "max" | "min") that picks this config's best.ckpt: the class's `monitor` unless a
        key of the config chooses it (caption's `monitor`, gan's `fid_weights`). `tune` optimises it by default."""
        return self.monitor, self.monitor_mode

    def bf16_reason(self, cfg) -> str | None:
        """Why `precision: auto` must stay fp32 for this config, or None when bf16 may be used."""
        if not self.bf16_measured:
            return f"auto: {self.name} trains in fp32 (bf16 not measured for it yet)"
        return None

    def bf16_probe_model(self, cfg, num_classes: int):
        """A factory of fresh untrained models of this run's architecture, whose training steps
        engine/precision_probe.py times in fp32 and bf16 to settle `precision: auto` on a CPU with native BF16; None
        keeps the CPU rule (native BF16 means bf16)."""
        return None

    def val_batch_size(self, cfg) -> int:
        return cfg.batch_size

    def trained_name(self, cfg) -> str:
        """The network the log's "training ..." line names: the config's model, for most tasks."""
        return cfg.model

    def run_name(self, cfg) -> str:
        """The default run folder name under runs/."""
        return f"{self.name}-{cfg.model}-{Path(cfg.data).stem}"

    def after_fit(self, run: Path, cfg, progress) -> None:
        """Work on the trained run before its report is written (classification fits its temperature here)."""

    def write_report(self, run: Path) -> Path | None:
        """After training: evaluate best.ckpt on the run's validation split and write report.html."""
        return None

    def write_card(self, run: Path, peak_memory: dict | None = None) -> Path | None:
        """The run's model_card.md (after the report, which it may read); None for no card. A task that supplies
        `card_facts` takes `CardFromFacts` (tasks/common/card_hook.py) before this class, which fills the card's
        common sections with them."""
        return None

    def card_facts(self, run: Path, cfg, summary: dict):
        """The task's own part of its model card (`tasks.common.card.CardFacts`: figures, intended use,
        limitations, pretrained weights), read from the run folder; None for no card."""
        return None

    def refresh_card(self, run: Path) -> Path | None:
        """After `pixelforge evaluate`: rewrite the card of a task that writes one, since every card reports the
        run's latest own evaluation (the test split's once scored). A run folder that cannot be written keeps its
        card; the evaluation itself is already saved."""
        if type(self).write_card is Task.write_card:
            return None
        try:
            return self.write_card(run)
        except OSError:
            return None

    # ---- data ---------------------------------------------------------------------------------------------------
    data_kind: str = "classes"  # the annotations it reads: classes | boxes | masks | instances (data/builtin.py)

    def builtin_or_path(self, path: str) -> str:
        """A built-in dataset's name (`shapes`) becomes its folder in this task's annotation kind."""
        from pixelforge.data.builtin import BUILTIN_DATASETS, materialize

        if path in BUILTIN_DATASETS and not Path(path).exists():
            return str(materialize(path, kind=self.data_kind))
        return path

    reads_photo_folder: bool = False  # any folder of unlabelled photos (denoise, compress, style): `data check` knows it

    def check_dataset(self, path: str, **options):
        """`pixelforge data check`: a report with `problem_count`, `error_count` (the problems that stop training or
        leave data out: `data check` exits 1 on them) and `to_json()`."""
        if not self.reads_photo_folder:
            raise self._unsupported("data check")
        from pixelforge.data.check import check_image_folder

        return check_image_folder(path, img_size=options.get("img_size"))

    def print_check(self, report) -> None:
        if not self.reads_photo_folder:
            raise self._unsupported("data check")
        from pixelforge.data.check import print_report

        print_report(report)

    def write_preview(self, path: str, out: Path, augment: str, img_size: int, count: int) -> Path:
        """`pixelforge data preview`: a grid of augmented training samples, as the model will see them."""
        raise self._unsupported("data preview")

    # ---- after training -------------------------------------------------------------------------------------
    # `pixelforge explain` draws class heat maps (Grad-CAM and the rest, explain/) for a task whose runs are image
    # classifiers; a task with its own explanation (captioning's attention) defines `explain_images` instead.
    heat_maps: bool = False

    def evaluate(self, run: Path, *, data: str | None = None, split: str | None = None, out: Path | None = None,
                 **options):
        """Score the run's best checkpoint; returns `pixelforge.runs.result.EvalResult`."""
        raise self._unsupported("evaluate")

    def format_metrics(self, metrics: dict) -> str:
        """The CLI's human-readable summary of `evaluate`'s metrics."""
        return "  ".join(f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, float))

    def score_files(self, gt: Path, predictions: Path, **options) -> dict:
        """`evaluate --task NAME --gt ... --predictions ...`: score predictions made elsewhere."""
        raise self._unsupported("evaluate --gt/--predictions")

    def evaluate_episodes(self, data: str, **options) -> dict:
        """`evaluate --task NAME --data DIR --ways N --shots K --episodes E`: episodic few-shot accuracy, no run."""
        raise self._unsupported("evaluate --ways/--shots/--episodes")

    # The key of `predict`'s rows naming the main file written (style "stylized"), which `pixelforge.predict` copies
    # to the "output" every task's rows share (deploy/runtime/rows.py); None: this task's rows write no file. The
    # same as the task's package runtime's `output_key`, so a run's rows and its package's have the same keys.
    predict_output: str | None = None

    def predict(self, run: Path, paths: list, *, out: Path | None = None, **options) -> list[dict]:
        """Predict image files with a run folder (PyTorch); one dict per image (`pixelforge.predict` adds the keys
        every task's rows have: `path`, `task`, `output`)."""
        raise self._unsupported("predict")

    def describe_prediction(self, result: dict) -> str:
        """One line of `pixelforge predict`'s text output for one image's result."""
        return result.get("error") or result.get("summary") or str(result)

    def export(self, run: Path, out: Path, **options):
        """Write a deployable package (ONNX + pre/post-processing) checked against the PyTorch model."""
        raise self._unsupported("export")

    # ---- helpers ----------------------------------------------------------------------------------------------
    def _unsupported(self, what: str) -> PixelforgeError:
        return PixelforgeError(f"{what}: not available for task {self.name!r}")

    def reject_options(self, what: str, options: dict) -> None:
        """One-line error for options given to a task that has no use for them (instead of ignoring them)."""
        given = sorted(k for k, v in options.items() if v not in (None, False))
        if given:
            flags = ", ".join("--" + k.replace("_", "-") for k in given)
            raise PixelforgeError(f"{what}: {flags} not available for task {self.name!r}")


def _as_given(key: str, value) -> str:
    """How the user set `key` to `value`: the CLI option (`--no-channels-last`), or the YAML key for a mapping."""
    flag = key.replace("_", "-")
    if isinstance(value, bool):
        return f"--{flag}" if value else f"--no-{flag}"
    if isinstance(value, BaseModel):  # augment_options: YAML only
        return f"{key}: {value.model_dump(exclude_none=True)}"
    return f"--{flag} {value}"
