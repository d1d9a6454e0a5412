"""Any object with `monitor`, `training_step` and `validate` trains in the engine's loop: the contract detection and
segmentation rely on (nested batches, task-named metrics, best.ckpt chosen by the task's monitor)."""

import math

import torch
from pixelforge.engine.fabric import lightning_fabric
from torch.utils.data import DataLoader

from pixelforge.runs import folder as rd
from pixelforge.engine.loop import EpochSampler, Loop, LoopState
from pixelforge.engine.schedule import build_optimizer, build_scheduler


class ToyRegression:
    """Batches are (list of inputs, list of target dicts), as detection's are; the metric is negative error."""

    monitor = "val_score"

    def __init__(self):
        self.validations = 0

    def training_step(self, model, batch):
        xs, targets = batch
        pred = model(torch.stack(xs))
        loss = torch.nn.functional.mse_loss(pred.squeeze(1), torch.stack([t["y"] for t in targets]))
        return {"loss": loss, "count": len(xs)}

    def validate(self, model, batches, fabric):
        self.validations += 1
        errors = [float((model(torch.stack(xs)).squeeze(1) - torch.stack([t["y"] for t in ts])).abs().mean())
                  for xs, ts in batches]
        return {"val_loss": sum(errors) / len(errors), "val_score": -sum(errors) / len(errors)}


def _collate(items):
    return [x for x, _ in items], [t for _, t in items]


def test_a_duck_typed_task_trains_and_its_monitor_picks_best_checkpoint(tmp_path):
    torch.manual_seed(0)
    xs = torch.randn(64, 3)
    data = [(x, {"y": x.sum()}) for x in xs]
    fabric = lightning_fabric().Fabric(accelerator="cpu", devices=1)
    model = torch.nn.Linear(3, 1)
    optimizer = build_optimizer("adamw", [{"params": model.parameters(), "lr": 0.05}], 0.05)
    sampler = EpochSampler(len(data), seed=0)
    train_loader = DataLoader(data, batch_size=8, sampler=sampler, collate_fn=_collate)
    val_loader = DataLoader(data, batch_size=16, collate_fn=_collate)
    scheduler = build_scheduler("constant", optimizer, len(train_loader) * 4, 0)
    (tmp_path / "checkpoints").mkdir()
    task = ToyRegression()
    loop = Loop(fabric, task, model, optimizer, scheduler, train_loader, val_loader, sampler, tmp_path, model, epochs=4,
                channels_last=True)
    state = loop.run(LoopState())

    rows = rd.read_metrics(tmp_path / "metrics.csv")
    assert task.validations == 4 and [r["epoch"] for r in rows] == [1, 2, 3, 4]
    assert "train_acc" not in rows[0] and "val_score" in rows[0]  # no accuracy invented for a task without one
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    best = max(rows, key=lambda r: r["val_score"])
    assert state.best_epoch == best["epoch"] and math.isclose(state.best_metric, best["val_score"], abs_tol=1e-5)
    saved = rd.load_checkpoint(tmp_path / "checkpoints" / "best.ckpt")
    assert saved["loop"]["best_epoch"] == best["epoch"]


class ScalarsAndOwnTransfer(ToyRegression):
    """Returns python and tensor scalars beside the loss, and moves its (dict) batches itself."""

    def __init__(self):
        super().__init__()
        self.transfers = 0

    def transfer_batch(self, batch, fabric):
        self.transfers += 1
        return {"x": fabric.to_device(torch.stack(batch[0])), "y": [t["y"] for t in batch[1]]}

    def training_step(self, model, batch):
        pred = model(batch["x"]).squeeze(1)
        loss = torch.nn.functional.mse_loss(pred, torch.stack(batch["y"]))
        return {"loss": loss, "count": len(batch["y"]), "batch_size": float(len(batch["y"])),
                "max_error": (pred - torch.stack(batch["y"])).abs().max().detach(), "not_a_scalar": pred.detach()}

    def validate(self, model, batches, fabric):
        return super().validate(model, ((list(b["x"]), [{"y": y} for y in b["y"]]) for b in batches), fabric)


def test_every_scalar_a_step_returns_is_logged_as_its_count_weighted_mean(tmp_path):
    torch.manual_seed(0)
    data = [(x, {"y": x.sum()}) for x in torch.randn(60, 3)]  # batches of 8: seven of 8, then one of 4
    fabric = lightning_fabric().Fabric(accelerator="cpu", devices=1)
    model = torch.nn.Linear(3, 1)
    optimizer = build_optimizer("adamw", [{"params": model.parameters(), "lr": 0.05}], 0.05)
    sampler = EpochSampler(len(data), seed=0)
    train_loader = DataLoader(data, batch_size=8, sampler=sampler, collate_fn=_collate)
    val_loader = DataLoader(data, batch_size=16, collate_fn=_collate)
    task = ScalarsAndOwnTransfer()
    loop = Loop(fabric, task, model, {"main": optimizer}, {"main": None}, train_loader, val_loader, sampler,
                tmp_path, model, epochs=2)
    loop.run(LoopState())

    rows = rd.read_metrics(tmp_path / "metrics.csv")
    assert list(rows[0])[:4] == ["epoch", "train_loss", "train_batch_size", "train_max_error"]
    assert "train_not_a_scalar" not in rows[0] and task.transfers == 2 * (8 + 4)  # train and val batches
    assert rows[0]["train_batch_size"] == round((7 * 8 * 8 + 4 * 4) / 60, 6)  # weighted by each batch's count
