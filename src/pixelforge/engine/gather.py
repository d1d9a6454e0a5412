"""Every process's rows in one tensor, for validation figures that need all of them at once (retrieval among every
image, a contrastive loss over fixed batches of the whole set), which a sum of per-process numbers cannot give.

Validation shards are not padded (samplers.py), so processes hold different numbers of rows; torch's all_gather
needs equal shapes, so each pads to the largest share and the padding is cut off again. Call it once per
validation, after the batches, on every process (it is a collective).
"""

from __future__ import annotations

import torch


def gather_rows(rows: torch.Tensor, fabric) -> torch.Tensor:
    """Rank 0's rows, then rank 1's, ...: (sum of the processes' row counts, *trailing shape), on `rows`' device.

    A process with no rows passes a tensor of the same number of dimensions with zero rows (its trailing sizes may
    be 0: the largest of each is used).

    Example:
        >>> class OneProcess: world_size = 1
        >>> gather_rows(torch.ones(3, 2), OneProcess()).shape
        torch.Size([3, 2])
    """
    if fabric.world_size <= 1:
        return rows
    shape = torch.tensor(rows.shape, dtype=torch.long, device=fabric.device)
    shapes = fabric.all_gather(shape).reshape(fabric.world_size, -1).cpu()
    largest = shapes.max(0).values.tolist()
    padded = torch.zeros(largest, dtype=rows.dtype, device=fabric.device)
    padded[tuple(slice(0, n) for n in rows.shape)] = rows.to(fabric.device)
    gathered = fabric.all_gather(padded).reshape(fabric.world_size, *largest)
    return torch.cat([gathered[r, :int(shapes[r, 0])] for r in range(fabric.world_size)]).to(rows.device)
