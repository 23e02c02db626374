"""A killed long training run resumes from its last epoch and ends where an unkilled one
ends (search.robust.EpochCheckpoint, used by the base model's training)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from search.robust import train_base
from search.zoo import make_loader


class Blobs(Dataset):
    """Two Gaussian blobs; `fail_after` calls to __getitem__ raise, as a kill would."""

    def __init__(self, fail_after: int | None = None) -> None:
        generator = torch.Generator().manual_seed(1)
        self.x = torch.randn(96, 4, generator=generator)
        self.y = (self.x.sum(dim=1) > 0).long()
        self.fail_after = fail_after
        self.calls = 0

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise KeyboardInterrupt("killed")
        return self.x[index], self.y[index]


def train(data: Blobs, checkpoint: Path | None, samples: int | None) -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.3), nn.ReLU(), nn.Linear(8, 2))
    loader = make_loader(data, 16, shuffle=True, seed=3, samples_per_epoch=samples)
    train_base(model, loader, 4, 0.01, torch.device("cpu"), checkpoint)
    return model


@pytest.mark.parametrize("samples", [None, 48])
def test_a_killed_run_resumes_after_its_last_epoch_and_ends_the_same(
    tmp_path: Path, samples: int | None
) -> None:
    straight = train(Blobs(), None, samples)
    path = tmp_path / "base.partial.pt"
    per_epoch = samples or 96
    with pytest.raises(KeyboardInterrupt):  # killed in the third epoch
        train(Blobs(fail_after=2 * per_epoch + 5), path, samples)
    assert torch.load(path, weights_only=True)["epoch"] == 2
    resumed = train(Blobs(), path, samples)
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert not path.exists()  # a finished run leaves no partial state behind


def test_without_the_saved_state_a_rerun_would_differ(tmp_path: Path) -> None:
    """The comparison above can fail: a run restarted at epoch 2 without the saved
    optimizer, schedule and RNG state ends elsewhere."""
    straight = train(Blobs(), None, None)
    path = tmp_path / "base.partial.pt"
    with pytest.raises(KeyboardInterrupt):
        train(Blobs(fail_after=2 * 96 + 5), path, None)
    saved = torch.load(path, weights_only=True)
    saved["parts"]["optimizer"]["state"] = {}
    torch.save(saved, path)
    resumed = train(Blobs(), path, None)
    assert not all(
        torch.equal(a, b)
        for a, b in zip(straight.state_dict().values(), resumed.state_dict().values(), strict=True)
    )
