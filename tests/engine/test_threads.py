"""Per-image transforms run on one PyTorch thread and leave the model's thread count as it was."""

import pickle

import torch

from pixelforge.engine.threads import SingleThreaded, single_threaded, torch_threads


def test_single_threaded_runs_on_one_thread_and_restores():
    before = torch.get_num_threads()
    seen = single_threaded(lambda x: (x, torch.get_num_threads()))(7)
    assert seen == (7, 1)
    assert torch.get_num_threads() == before


def test_thread_count_restored_after_an_error():
    before = torch.get_num_threads()
    try:
        with torch_threads(1):
            raise ValueError("boom")
    except ValueError:
        pass
    assert torch.get_num_threads() == before


def test_wrapper_is_picklable_and_idempotent():
    from torchvision.transforms import v2

    wrapped = single_threaded(v2.RandomHorizontalFlip(p=1.0))
    assert single_threaded(wrapped) is wrapped and single_threaded(None) is None
    clone = pickle.loads(pickle.dumps(wrapped))  # DataLoader workers receive the dataset pickled
    assert isinstance(clone, SingleThreaded)
    assert clone(torch.arange(3).reshape(1, 1, 3)).tolist() == [[[2, 1, 0]]]


def test_collate_stacks_on_one_thread(monkeypatch):
    from pixelforge.engine import threads

    seen = []
    monkeypatch.setattr(threads, "default_collate", lambda batch: seen.append(torch.get_num_threads()) or len(batch))
    assert threads.single_threaded_collate([1, 2, 3]) == 3 and seen == [1]
