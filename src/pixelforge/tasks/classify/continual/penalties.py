"""The two regularisers that fight forgetting without old images: EWC and LwF.

EWC (Kirkpatrick et al. 2017, "Overcoming catastrophic forgetting in neural networks", PNAS): a quadratic penalty
`lambda/2 * sum_i F_i (theta_i - theta*_i)^2` that holds each weight near its value after the old task, in
proportion to its diagonal Fisher information F_i there. F is the empirical Fisher (the mean of squared per-image
gradients of the log-likelihood of the true label, computed exactly, one image at a time); over several steps
the Fisher terms are summed and the anchor is the latest model ("online EWC", Schwarz et al. 2018), so the memory
cost stays one copy of the weights. Parameters that grew (the head's new rows) are penalised on their old part only.

LwF (Li & Hoiem 2016, "Learning without Forgetting", ECCV): the new model's outputs on the old classes are
distilled towards the old model's on the new images, with temperature T = 2 (Hinton et al. 2015), scaled by T^2
so its gradients keep their size as T changes. KL divergence: the paper's cross-entropy less the targets' entropy,
a constant, so the same gradients.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def _old_part(param: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    """The slice of a (possibly grown) parameter that existed before: the head's first rows."""
    return param[tuple(slice(0, n) for n in old.shape)]


def ewc_penalty(params: dict[str, torch.Tensor], fisher: dict[str, torch.Tensor],
                anchor: dict[str, torch.Tensor]) -> torch.Tensor:
    """sum_i F_i (theta_i - theta*_i)^2 over the parameters in `fisher` (without the lambda/2).

    Example:
        >>> p = {"w": torch.tensor([1.0, 2.0, 5.0])}
        >>> float(ewc_penalty(p, {"w": torch.tensor([2.0, 1.0])}, {"w": torch.tensor([0.0, 0.0])}))
        6.0
    """
    total = None
    for name, f in fisher.items():
        theta = _old_part(params[name], f)
        term = (f.to(theta.device) * (theta.float() - anchor[name].to(theta.device)) ** 2).sum()
        total = term if total is None else total + term
    if total is None:
        return torch.zeros(())
    return total


def diagonal_fisher(model: nn.Module, batches) -> dict[str, torch.Tensor]:
    """The empirical diagonal Fisher of `model` (eval mode) over (images, labels) batches: the mean over images of
    each trainable parameter's squared gradient of log p(label | image).

    One backward pass per image: exact per-image gradients, one copy of them in memory at a time, and measured
    faster than torch.func's vmap on CPU (1.8 against 4.0 s for 64 images through simple_cnn; vmap in chunks of 8,
    which bounds its memory, took 14 s)."""
    model.eval()
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    sums = {n: torch.zeros_like(p, dtype=torch.float32) for n, p in params.items()}
    count = 0
    for x, y in batches:
        for image, label in zip(x, y):
            model.zero_grad(set_to_none=True)
            F.log_softmax(model(image[None]).float(), 1)[0, label].backward()
            for n, p in params.items():
                if p.grad is not None:
                    sums[n] += p.grad.float() ** 2
        count += len(y)
    model.zero_grad(set_to_none=True)
    return {n: s / max(count, 1) for n, s in sums.items()}


def lwf_distillation(new_logits: torch.Tensor, old_logits: torch.Tensor, temperature: float = 2.0) -> torch.Tensor:
    """T^2 * KL(softmax(old/T) || softmax(new/T)) over the old classes, the batch mean.

    Example:
        >>> z = torch.tensor([[1.0, 2.0]])
        >>> round(float(lwf_distillation(z, z)), 6)
        0.0
    """
    n_old = old_logits.shape[1]
    log_new = F.log_softmax(new_logits[:, :n_old].float() / temperature, 1)
    old = F.softmax(old_logits.float() / temperature, 1)
    return F.kl_div(log_new, old, reduction="batchmean") * temperature ** 2
