"""Validation under DDP scores every image exactly once: the sampler shards without padding, and every task's
validate reduces once at the end, so ranks holding different numbers of images agree with one process."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest
import torch
from torch import multiprocessing as mp

from pixelforge.engine.samplers import EpochSampler


@pytest.mark.parametrize("world", [1, 2, 3, 4])
def test_validation_shards_cover_every_index_once_and_training_shards_are_padded_to_equal_length(world):
    for size in range(0, 12):
        shards = [list(EpochSampler(size, seed=3, rank=r, world=world, pad=False)) for r in range(world)]
        assert sorted(i for shard in shards for i in shard) == list(range(size))
        assert max(map(len, shards)) - min(map(len, shards)) <= 1
        padded = [list(EpochSampler(size, seed=3, rank=r, world=world)) for r in range(world)]
        assert len({len(shard) for shard in padded}) == 1 and set().union(*padded) == set(range(size))


class _DistFabric:
    """The part of Fabric that `validate` uses, over a plain torch.distributed group."""

    device = torch.device("cpu")

    def __init__(self, rank: int, world: int):
        self.global_rank, self.world_size = rank, world

    def all_reduce(self, tensor, reduce_op="sum"):
        if self.world_size > 1:
            tensor = tensor.clone()
            torch.distributed.all_reduce(tensor, op={"sum": torch.distributed.ReduceOp.SUM,
                                                     "max": torch.distributed.ReduceOp.MAX}[reduce_op])
        return tensor

    def all_gather(self, tensor):  # Fabric's: a new first dimension of the processes
        if self.world_size == 1:
            return tensor
        parts = [torch.empty_like(tensor) for _ in range(self.world_size)]
        torch.distributed.all_gather(parts, tensor.contiguous())
        return torch.stack(parts)

    def to_device(self, batch):
        return batch

    def broadcast(self, obj, src=0):
        if self.world_size > 1:
            box = [obj]
            torch.distributed.broadcast_object_list(box, src=src)
            obj = box[0]
        return obj


class _FakeDetector(torch.nn.Module):
    """Boxes on a grid of every size, each of both classes, scored from the pixels under it: deterministic, so any
    split of the images must score the same, and some boxes overlap the objects (a mAP above 0)."""

    def forward(self, images):
        outputs = []
        for image in images:
            side = image.shape[-1]
            boxes, scores, labels = [], [], []
            for size in (8, 16, 24):
                for y in range(0, side - size + 1, 4):
                    for x in range(0, side - size + 1, 4):
                        patch = float(image[:, y:y + size, x:x + size].std())
                        for label in (1, 2):
                            boxes.append([x, y, x + size, y + size])
                            scores.append(patch / label)
                            labels.append(label)
            outputs.append({"boxes": torch.tensor(boxes, dtype=torch.float), "scores": torch.tensor(scores),
                            "labels": torch.tensor(labels)})
        return outputs


class _FakeClip(torch.nn.Module):
    """open_clip's CLIP.forward contract: (unit image embeddings, unit text embeddings, logit scale)."""

    def __init__(self):
        super().__init__()
        self.image, self.text = torch.nn.Linear(192, 4), torch.nn.Embedding(20, 4)

    def forward(self, images, tokens):
        normal = torch.nn.functional.normalize
        return normal(self.image(images.flatten(1)), dim=-1), normal(self.text(tokens).mean(1), dim=-1), \
            torch.tensor(10.0)


class _TinyFeatures(torch.nn.Module):
    """An FID feature extractor of four numbers a channel (the real ones are too slow for a test)."""

    name = "tiny"

    def forward(self, images):
        return torch.nn.functional.adaptive_avg_pool2d(images.float() / 255, 2).flatten(1)


def _clip(images):
    from pixelforge.tasks.clip.task import ClipStep, ImageCaptions

    tokens = [torch.tensor([[1 + i % 3, 4, 5 + i % 2]]) for i in range(len(images))]  # some captions repeat
    captions = [" ".join(map(str, t[0].tolist())) for t in tokens]
    return ClipStep(None, captions), _FakeClip(), ImageCaptions(images, tokens, random_caption=False), None


class _FakeCodec(torch.nn.Module):
    """CompressAI's forward contract: the decoded image and each latent's likelihoods."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 3, 1)

    def forward(self, x):
        return {"x_hat": self.conv(x).sigmoid(), "likelihoods": {"y": x.sigmoid().clamp_min(1e-3)}}


def _pixel_tasks(images):
    """Denoising and compression: per-image sums, reduced once."""
    from pixelforge.tasks.compress.step import CompressionStep
    from pixelforge.tasks.denoise.task import DenoisingStep

    clean = images.sigmoid()
    denoise = (DenoisingStep(), torch.nn.Conv2d(3, 3, 3, padding=1), list(zip(clean + 0.1 * images, clean)), None)
    codec = _FakeCodec()
    return {"denoise": denoise, "compress": (CompressionStep(codec, 0.01, 1e-3), codec, list(clean), None)}


class _FakeCaptioner(torch.nn.Module):
    """The captioner's contract: teacher-forced (logits, attention) and greedy decoding, from the pixels."""

    def __init__(self, vocab: int):
        super().__init__()
        self.image, self.word = torch.nn.Linear(192, vocab), torch.nn.Embedding(vocab, vocab)

    def forward(self, images, tokens, sampling, word_dropout, unk):
        logits = self.image(images.flatten(1))[:, None] + self.word(tokens[:, :-1])
        return logits, torch.ones(*logits.shape[:2], 1)

    def greedy(self, images, start, end, max_len):
        base, word, out = self.image(images.flatten(1)), torch.full((len(images),), start), []
        for _ in range(max_len):
            word = (base + self.word(word)).argmax(-1)
            out.append(word)
        return torch.stack(out, 1), None


def _caption(images):
    from types import SimpleNamespace

    from pixelforge.data.captions.tokenizer import Tokenizer
    from pixelforge.tasks.caption.task import CaptionPairs, CaptionStep

    captions = [["a red square", "a square"], ["a blue circle on grey"], ["two red circles"], ["a square"],
                ["a small blue square"], ["one circle"], ["a red circle and a square"]]
    tokenizer = Tokenizer.fit([c for pair in captions for c in pair])
    tokens = [[tokenizer.encode(c, 6) for c in pair] for pair in captions]
    ids = list(range(10, 17))
    cfg = SimpleNamespace(label_smoothing=0.1, attention_penalty=0.0, max_caption_words=6, monitor="bleu4")
    step = CaptionStep(cfg, tokenizer, dict(zip(ids, captions)), {})
    return step, _FakeCaptioner(len(tokenizer)), CaptionPairs(images, ids, tokens, 8, tokenizer.pad, first_only=True), None


class _FakeLossNetwork(torch.nn.Module):
    """The style loss network's contract: named feature maps, and which layers score content and style."""

    content_layers, style_layers = ["a"], ["a", "b"]

    def __init__(self):
        super().__init__()
        self.a, self.b = torch.nn.Conv2d(3, 4, 3), torch.nn.Conv2d(4, 4, 3)

    def forward(self, x):
        a = self.a(x).relu()
        return {"a": a, "b": self.b(a)}


def _style(images):
    from pixelforge.tasks.style.gatys import Weights, gram_matrix
    from pixelforge.tasks.style.task import StyleStep

    lossnet = _FakeLossNetwork()
    with torch.no_grad():
        grams = {k: gram_matrix(v) for k, v in lossnet(images[:1].sigmoid()).items()}
    return StyleStep(lossnet, grams, Weights()), torch.nn.Conv2d(3, 3, 3, padding=1), list(images.sigmoid()), None


def _gan():
    from pixelforge.tasks.gan.config import GanConfig
    from pixelforge.tasks.gan.fid import mean_pairwise_distance
    from pixelforge.tasks.gan.models import build_gan
    from pixelforge.tasks.gan.task import GANStep

    cfg = GanConfig(data="digits", img_size=16, native_size=8, width=8, latent_dim=8, fid_n=16)
    model = build_gan(cfg, 1, 2, 8, 16)
    real = torch.rand(17, 12)  # RGB: 3 x 4 features
    return GANStep(model, cfg, 2, _TinyFeatures(), real, mean_pairwise_distance(real)), model, [], None


def _tasks(data_dir: Path):
    """(task, model, dataset, collate) for classification, segmentation, detection, CLIP, captioning, denoising,
    compression and style transfer,
    on odd-sized validation sets,
    and the GAN (which reads no validation batches: it scores generated images)."""
    from pixelforge.data.boxes.coco import coco_dict
    from pixelforge.data.boxes.dataset import BoxDataset, box_collate
    from pixelforge.data.boxes.source import read_boxes
    from pixelforge.data.boxes.transforms import eval_box_transform
    from pixelforge.tasks.classify.task import ClassificationTask
    from pixelforge.tasks.detect.task import DetectionTask
    from pixelforge.tasks.segment.task import SegmentationTask
    from pixelforge.tasks.segment.losses import build_segmentation_loss

    torch.manual_seed(0)
    images = torch.randn(7, 3, 8, 8)
    labels = torch.randint(0, 3, (7,))
    classify = (ClassificationTask(), torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(192, 3)),
                list(zip(images, labels)), None)
    masks = torch.randint(0, 3, (7, 8, 8))
    masks[0, :2] = 255  # ignored pixels
    segment = (SegmentationTask(build_segmentation_loss("ce", 3, 255, None), 3), torch.nn.Conv2d(3, 3, 1),
               list(zip(images, masks)), None)
    source = read_boxes(data_dir)
    val = source.split("val")
    boxes = BoxDataset(val, source.category_ids, eval_box_transform(48), img_size=48)
    boxes.preload()
    detect = (DetectionTask(coco_dict(val, source.categories), source.category_ids), _FakeDetector(), boxes,
              box_collate)
    return {"classify": classify, "segment": segment, "detect": detect, "clip": _clip(images), "gan": _gan(),
            "caption": _caption(images), "style": _style(images),
            **_pixel_tasks(images)}


def _validate_all(data_dir: Path, rank: int, world: int) -> dict:
    """Each task's validation over the engine's validation loader (engine/fit.py `_loaders`), as the loop runs it."""
    from pixelforge.engine.fit import FitConfig, _loaders
    from pixelforge.engine.setup import TaskSetup
    from pixelforge.engine.threads import single_threaded_collate

    fabric, results = _DistFabric(rank, world), {}
    for name, (task, model, dataset, collate) in _tasks(data_dir).items():
        setup = TaskSetup(task=task, model=model, trained=model, train_data=dataset, val_data=dataset,
                          n_train=len(dataset), n_val=len(dataset), collate_fn=collate or single_threaded_collate)
        _, loader, _ = _loaders(setup, FitConfig(batch_size=2, seed=0), fabric)
        with torch.no_grad():
            results[name] = {**task.validate(model.eval(), iter(loader), fabric), "images": len(loader.sampler)}
    return results


def _rank_main(rank: int, world: int, port: int, data_dir: str, out: str) -> None:
    """One of two gloo processes: every task's validation on its shard, then the loop's validation (both tests)."""
    torch.distributed.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        results = {"tasks": _validate_all(Path(data_dir), rank, world), "loop": _validate_in_the_loop(rank, world, out)}
    finally:
        torch.distributed.destroy_process_group()
    Path(out, f"rank{rank}.json").write_text(json.dumps(results))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> tuple[dict, list[dict]]:
    """(one process's results, each of two gloo processes' results): one pair of spawned processes for both tests
    below, as each process's start (interpreter, torch, the tasks) costs far more than what it validates."""
    from tests.tasks.test_detection import write_tiny_coco

    tmp_path = tmp_path_factory.mktemp("shards")
    data = write_tiny_coco(tmp_path / "coco", {"train": 2, "val": 5})
    single = _validate_all(data, 0, 1)
    context = mp.start_processes(_rank_main, args=(2, _free_port(), str(data), str(tmp_path)), nprocs=2, join=False,
                                 start_method="spawn")
    deadline = time.monotonic() + 180  # a rank waiting on a collective the other never calls would hang here
    while not context.join(timeout=5):
        assert time.monotonic() < deadline, "validation ranks did not finish: mismatched collectives?"
    return single, [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]


def test_two_ranks_with_unequal_shards_score_exactly_like_one_process(two_ranks):
    single, ranks = two_ranks[0], [rank["tasks"] for rank in two_ranks[1]]
    for name, expected in single.items():
        assert ranks[0][name]["images"] + ranks[1][name]["images"] == expected["images"]
        if name != "gan":
            assert ranks[0][name]["images"] != ranks[1][name]["images"]  # odd-sized: the shards differ by one
        for rank in ranks:
            got = {k: v for k, v in rank[name].items() if k != "images"}
            want = {k: v for k, v in expected.items() if k != "images"}
            assert got.keys() == want.keys()
            for key in want:
                if name in ("denoise", "compress", "style") or (key == "val_loss" and name != "gan"):
                    # float sums (per image, or float32 means of batches) added in another order
                    assert got[key] == pytest.approx(want[key], rel=1e-6), (name, key)
                else:  # what is counted (hits, confusion matrices, detections, FID's rows) is exact
                    assert got[key] == want[key], (name, key)


class _RunningMean:
    """A step object whose validation reports the model's batch-norm running mean as this process sees it."""

    monitor = "val_mean"

    def validate(self, model, batches, fabric):
        list(batches)
        return {"val_mean": float(model[0].running_mean.sum())}


def _validate_in_the_loop(rank: int, world: int, out: str) -> dict:
    """The batch-norm running mean the loop's validation saw in this process, and the one this process keeps."""
    from pixelforge.engine.loop import Loop

    model = torch.nn.Sequential(torch.nn.BatchNorm1d(3))
    model.train()
    model(torch.randn(4, 3) + rank * 10)  # each process's last training batch moved its own running mean
    loop = Loop(_DistFabric(rank, world), _RunningMean(), model, {}, {}, None, [torch.zeros(2, 3)], None,
                Path(out), model, 1)
    seen = loop.validate()["val_mean"]
    torch.distributed.barrier()
    return {"seen": seen, "saved": float(model[0].running_mean.sum())}


def test_every_process_validates_rank_0_s_batch_norm_statistics_the_checkpointed_model_s(two_ranks):
    """Validation runs the module outside DDP's wrapper, which broadcasts rank 0's buffers only at the next
    training forward: process 1 validated its own batch's running statistics, a model no checkpoint holds."""
    ranks = [rank["loop"] for rank in two_ranks[1]]
    assert ranks[1]["seen"] == ranks[0]["seen"] == ranks[0]["saved"]  # rank 0's, which it checkpoints


@pytest.mark.slow
def test_two_process_training_logs_the_single_process_accuracy_on_an_odd_validation_set(tmp_path):
    """Two-process DDP on CPU (gloo): every epoch logged once, a best checkpoint, and the logged accuracy is the
    all-reduced one over every validation image, equal to one process scoring them."""
    import pixelforge
    from pixelforge.data.builtin import materialize
    from pixelforge.runs import folder as rd

    digits = materialize("digits")
    lines = ["path,label,split"]
    for split, count in (("train", 64), ("val", 41)):  # 41: one process validates 21 images, the other 20
        files = sorted((digits / split).glob("*/*.png"))
        lines += [f"{f},{f.parent.name},{split}" for f in files[:: max(1, len(files) // count)][:count]]
    (tmp_path / "digits.csv").write_text("\n".join(lines) + "\n")
    result = pixelforge.train(str(tmp_path / "digits.csv"), out=str(tmp_path / "ddp"), epochs=2, devices=2,
                              accelerator="cpu", precision="32", model="simple_cnn", weights="none", img_size=32,
                              strategy="full", lr=3e-3, batch_size=16, quiet=True)
    rows = rd.read_metrics(result.run_dir / "metrics.csv")
    assert len(rows) == 2 and (result.run_dir / "checkpoints" / "best.ckpt").is_file()
    logged = max(row["val_acc"] for row in rows)  # best.ckpt is the best epoch's, which evaluate loads
    evaluation = pixelforge.evaluate(result.run_dir, split="val")  # one process, every image once
    assert evaluation.metrics["num_images"] == 41
    assert logged == round(evaluation.accuracy, 6)
