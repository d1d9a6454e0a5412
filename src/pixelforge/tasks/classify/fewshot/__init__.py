"""`--task fewshot`: classification from a few labelled images, on the classification stack's pretrained backbones.

Nothing is trained: `pixelforge fewshot --support DIR --query DIR` (predict.py) classifies by class prototypes of
L2-normalised embeddings (or a logistic head on them), and `pixelforge evaluate --task fewshot --data DIR --ways N
--shots K --episodes E` (episodic.py) measures N-way K-shot accuracy the way the literature does. It lives inside
the classify package because it reuses classify's feature extraction (features.py) as it is.
"""

from __future__ import annotations

from typing import Literal

from pixelforge.config import RunConfig
from pixelforge.errors import PixelforgeError
from pixelforge.tasks.base import Task
from pixelforge.tasks.registry import register_task


class FewShotConfig(RunConfig):
    task: Literal["fewshot"] = "fewshot"


@register_task
class FewShotTask(Task):
    name = "fewshot"
    description = "few-shot classification by prototypes of pretrained embeddings (no training): `pixelforge fewshot`"
    config_class = FewShotConfig

    def prepare_data(self, cfg) -> tuple:
        raise PixelforgeError("--task fewshot trains nothing: classify with `pixelforge fewshot --support DIR --query "
                              "DIR`, measure with `pixelforge evaluate --task fewshot --data DIR --ways N --shots K`")

    def evaluate_episodes(self, data: str, **options) -> dict:
        from pixelforge.tasks.classify.fewshot.episodic import evaluate_episodes

        return evaluate_episodes(self.builtin_or_path(data), **options)

    def format_metrics(self, metrics: dict) -> str:
        from pixelforge.tasks.classify.fewshot.episodic import format_episodes

        return format_episodes(metrics)
