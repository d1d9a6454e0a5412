"""The baseline: the PyTorch transfer-learning tutorial loop, written the plain way a user would write it.

torchvision ImageFolder + PIL decoding every epoch, the tutorial's transforms, DataLoader with 2 workers, the whole
network fine-tuned with SGD (lr 0.001, momentum 0.9, StepLR) in fp32, default memory layout. The model is the one
pixelforge trains: timm's tf_efficientnet_lite0 with the bundled ImageNet weights and a new 2-class head.
(https://pytorch.org/tutorials/beginner/transfer_learning_tutorial.html)
"""

from __future__ import annotations

import time

import timm
import torch
from torch import nn
from torch.utils.data import DataLoader, Subset
from torchvision import datasets, transforms

from pixelforge.models.weights import lite0_imagenet_state_dict

MEAN, STD = [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]  # Lite0's normalization (timm's pretrained_cfg)


def plain_transforms(img_size: int) -> dict[str, transforms.Compose]:
    return {
        "train": transforms.Compose([
            transforms.RandomResizedCrop(img_size),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(MEAN, STD),
        ]),
        "val": transforms.Compose([
            transforms.Resize(img_size * 256 // 224),
            transforms.CenterCrop(img_size),
            transforms.ToTensor(),
            transforms.Normalize(MEAN, STD),
        ]),
    }


def plain_datasets(root, train_idx: list[int], val_idx: list[int], img_size: int) -> dict[str, Subset]:
    tfs = plain_transforms(img_size)
    return {"train": Subset(datasets.ImageFolder(root, tfs["train"]), train_idx),
            "val": Subset(datasets.ImageFolder(root, tfs["val"]), val_idx)}


def plain_loaders(image_datasets: dict, batch_size: int = 32, workers: int = 2) -> dict[str, DataLoader]:
    return {name: DataLoader(ds, batch_size=batch_size, shuffle=name == "train", num_workers=workers)
            for name, ds in image_datasets.items()}


def plain_model(num_classes: int) -> nn.Module:
    model = timm.create_model("tf_efficientnet_lite0")
    model.load_state_dict(lite0_imagenet_state_dict(model))
    model.reset_classifier(num_classes)
    return model


def train_one_epoch(model, loader, criterion, optimizer, scheduler=None) -> tuple[int, float]:
    """One epoch of the tutorial's train phase; returns (images, seconds)."""
    model.train()
    started, images = time.perf_counter(), 0
    for inputs, labels in loader:
        optimizer.zero_grad()
        loss = criterion(model(inputs), labels)
        loss.backward()
        optimizer.step()
        images += len(labels)
    if scheduler is not None:
        scheduler.step()
    return images, time.perf_counter() - started


@torch.no_grad()
def accuracy(model, loader) -> float:
    model.eval()
    correct = total = 0
    for inputs, labels in loader:
        correct += int((model(inputs).argmax(1) == labels).sum())
        total += len(labels)
    return correct / max(total, 1)


def plain_training(root, train_idx, val_idx, img_size: int, epochs: int, batch_size: int = 32, workers: int = 2,
                   validate: bool = True, seed: int = 0) -> dict:
    """The tutorial loop from nothing (datasets, model) to `epochs` epochs; times are seconds since the start."""
    started = time.perf_counter()
    torch.manual_seed(seed)
    loaders = plain_loaders(plain_datasets(root, train_idx, val_idx, img_size), batch_size, workers)
    model = plain_model(len(loaders["train"].dataset.dataset.classes))
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=7, gamma=0.1)
    epochs_log = []
    for epoch in range(epochs):
        images, seconds = train_one_epoch(model, loaders["train"], criterion, optimizer, scheduler)
        val_acc = accuracy(model, loaders["val"]) if validate else None
        epochs_log.append({"epoch": epoch + 1, "train_images_per_s": round(images / seconds, 2),
                           "train_seconds": round(seconds, 2), "val_acc": val_acc,
                           "elapsed_s": round(time.perf_counter() - started, 2)})
    return {"epochs": epochs_log, "wall_s": round(time.perf_counter() - started, 2)}
