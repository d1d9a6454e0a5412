"""Micro-batching: concurrent requests share one model call.

A CNN on a CPU runs a batch of 16 images in far less time than 16 single-image calls (weights are read once,
matrix kernels stay busy). `MicroBatcher` queues each request's preprocessed crops, and one worker takes what is
waiting, up to `max_batch` images, waiting at most `max_wait_ms` for more once the first arrives, runs the model
once in a single inference thread (ONNX Runtime uses every core inside that call) and hands each request its rows.
While a batch runs, the next one gathers, so under load batches fill without any waiting.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass
class _Job:
    crops: list[np.ndarray]
    future: asyncio.Future


class MicroBatcher:
    """Batch `predict(crops) -> logits` calls coming from many coroutines.

    Example:
        >>> batcher = MicroBatcher(runtime.logits_for_crops, max_batch=32, max_wait_ms=5)  # doctest: +SKIP
        >>> logits = await batcher.submit([crop])  # doctest: +SKIP
    """

    def __init__(self, predict: Callable[[list[np.ndarray]], np.ndarray], max_batch: int = 32, max_wait_ms: float = 5.0):
        self.predict = predict
        self.max_batch = max(1, max_batch)
        self.max_wait = max(0.0, max_wait_ms) / 1000.0
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pixelforge-infer")
        self.batches_run = 0
        self.images_run = 0
        self._queue: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _ensure_started(self) -> None:
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done() or self._loop is not loop:
            # A new event loop (tests create one per client) gets its own queue and worker.
            self._loop, self._queue = loop, asyncio.Queue()
            self._task = loop.create_task(self._work())

    async def submit(self, crops: list[np.ndarray]) -> np.ndarray:
        """Logits for `crops` (one row each), computed in a shared batch."""
        self._ensure_started()
        future = asyncio.get_running_loop().create_future()
        await self._queue.put(_Job(crops, future))
        return await future

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, RuntimeError):
                pass
            self._task = None

    async def _gather(self) -> list[_Job]:
        jobs = [await self._queue.get()]
        count = len(jobs[0].crops)
        deadline = self._loop.time() + self.max_wait
        while count < self.max_batch:
            if not self._queue.empty():
                job = self._queue.get_nowait()
            else:
                remaining = deadline - self._loop.time()
                if remaining <= 0:
                    break
                try:
                    job = await asyncio.wait_for(self._queue.get(), remaining)
                except asyncio.TimeoutError:
                    break
            jobs.append(job)
            count += len(job.crops)
        return jobs

    async def _work(self) -> None:
        while True:
            jobs = await self._gather()
            crops = [crop for job in jobs for crop in job.crops]
            try:
                logits = await self._loop.run_in_executor(self.executor, self._predict_chunked, crops)
            except Exception as exc:  # noqa: BLE001 - handed to every waiting request
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(exc)
                continue
            start = 0
            for job in jobs:
                if not job.future.done():
                    job.future.set_result(logits[start:start + len(job.crops)])
                start += len(job.crops)

    def _predict_chunked(self, crops: list[np.ndarray]) -> np.ndarray:
        # One request may bring more images than max_batch; the model still sees at most max_batch at a time.
        parts = [self.predict(crops[i:i + self.max_batch]) for i in range(0, len(crops), self.max_batch)]
        self.batches_run += len(parts)
        self.images_run += len(crops)
        return np.concatenate(parts)
