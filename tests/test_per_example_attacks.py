"""An attack's verdict on an example does not depend on the batch it runs in.

The front's re-assessment runs each attack only on the examples earlier attacks left
standing (search.robust._cascade); that gives the straightforward numbers only if an
example's random start, and so whether it is broken, is its own. Checked here for PGD
(Linf and L2) and torchattacks' APGD fed per-example starts, on a tiny real model: the
attack on a shuffled subset breaks exactly the examples it breaks on the whole batch.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from search.config import EvaluationConfig
from search.robust._per_example import apgd_correct, example_starts, pgd_correct

THREAT = EvaluationConfig(epsilon=0.05, steps=6, step_size=0.02, final_steps=8, final_restarts=2)


@pytest.fixture(scope="module")
def tiny() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    images = torch.rand(60, 1, 8, 8)
    labels = (images.mean((1, 2, 3)) * 40).long() % 10
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(256, 10)
    )
    optimizer = torch.optim.Adam(model.parameters(), 0.02)
    for _ in range(150):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(images), labels).backward()
        optimizer.step()
    return model.eval(), images, labels


def test_starts_are_the_examples_own() -> None:
    ids = torch.tensor([3, 7, 11])
    whole = example_starts(torch.arange(12), (1, 2, 2), seed=4, stream=9)
    assert torch.equal(example_starts(ids, (1, 2, 2), seed=4, stream=9), whole[ids])
    assert not torch.equal(example_starts(ids, (1, 2, 2), seed=4, stream=10), whole[ids])
    assert not torch.equal(example_starts(ids, (1, 2, 2), seed=5, stream=9), whole[ids])


def _subset(labels: torch.Tensor) -> torch.Tensor:
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(1))
    return order[: len(labels) // 2]


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_pgd_on_a_subset_breaks_what_it_breaks_on_all(tiny, norm: str) -> None:
    model, images, labels = tiny
    threat = dataclasses.replace(THREAT, norm=norm, epsilon=0.5 if norm == "l2" else 0.05)
    ids = torch.arange(len(labels))
    whole = pgd_correct(model, images, labels, ids, threat, 12, seed=0, stream=1, record=(6,))
    assert 0 < int(whole[12].sum()) < len(labels), "the attack breaks some, not all"
    assert torch.all(whole[12] <= whole[6] | ~whole[12])  # marks are per step
    rows = _subset(labels)
    part = pgd_correct(model, images[rows], labels[rows], ids[rows], threat, 12, 0, 1, (6,))
    assert torch.equal(part[12], whole[12][rows])
    assert torch.equal(part[6], whole[6][rows])
    # PGD-6 read off a 12-step run is PGD-6 from the same start
    short = pgd_correct(model, images, labels, ids, threat, 6, seed=0, stream=1)
    assert torch.equal(short[6], whole[6])


@pytest.mark.parametrize("loss", ["ce", "dlr"])
def test_apgd_on_a_subset_breaks_what_it_breaks_on_all(tiny, loss: str) -> None:
    model, images, labels = tiny
    ids = torch.arange(len(labels))
    whole = apgd_correct(model, images, labels, ids, THREAT, loss, seed=0, stream=5)
    assert 0 < int(whole.sum()) < len(labels), "the attack breaks some, not all"
    rows = _subset(labels)
    part = apgd_correct(model, images[rows], labels[rows], ids[rows], THREAT, loss, 0, 5)
    assert torch.equal(part, whole[rows])


def test_apgd_draws_the_pending_start() -> None:
    """Inside torchattacks' apgd module, the random draw is the pending start, once."""
    import torchattacks

    from search.robust import _per_example

    _per_example._install()
    start = torch.full((2, 1, 3, 3), 0.25)
    _per_example._PENDING.start = start
    stand_in = torchattacks.attacks.apgd.torch
    assert stand_in.rand(torch.Size([2, 1, 3, 3])) is start
    assert not torch.equal(stand_in.rand(torch.Size([2, 1, 3, 3])), start)  # torch's own
    assert stand_in.zeros(2).tolist() == [0.0, 0.0]  # everything else is torch


def test_the_cascade_with_a_pgd_final_attack_equals_every_attack_on_every_example(tiny) -> None:
    """`final_attack: pgd` (the default's APGD path is checked on a real study in
    test_assess_parallel.py): the final PGD runs only on the search attack's survivors."""
    from torch.utils.data import DataLoader, TensorDataset

    from search.config import SanityConfig
    from search.robust import assess_attacks
    from search.robust._cascade import FINAL_PGD, LARGE, SEARCH
    from search.robust._sanity import large_epsilon_threat

    model, images, labels = tiny
    threat = dataclasses.replace(THREAT, final_attack="pgd", restarts=2, final_restarts=2)
    sanity = SanityConfig(steps_factor=2)
    loader = DataLoader(TensorDataset(images, labels), batch_size=16)
    cpu = torch.device("cpu")
    cascade = assess_attacks(model, loader, threat, sanity, cpu, seed=3)

    ids = torch.arange(len(labels))

    def survives(attack: EvaluationConfig, steps: int, stream: int, restarts: int) -> torch.Tensor:
        alive = torch.ones(len(labels), dtype=torch.bool)
        for restart in range(restarts):
            run = pgd_correct(model, images, labels, ids, attack, steps, 3, stream + restart)
            alive &= run[steps]
        return alive

    with torch.no_grad():
        clean = model(images).argmax(1) == labels
    few = clean & survives(threat, threat.steps, SEARCH, 2)
    final = few & survives(threat, threat.final_steps, FINAL_PGD, 2)
    many = clean & survives(threat, threat.steps * 2, SEARCH, 2)
    large = clean & survives(large_epsilon_threat(threat, sanity), threat.steps, LARGE, 2)
    n = len(labels)
    assert cascade.test == {
        "clean_accuracy": int(clean.sum()) / n,
        "robust_accuracy": int(few.sum()) / n,
        "robust_accuracy_final": int(final.sum()) / n,
    }
    # the search attack broke some, so the final attack ran on fewer examples than all
    assert int(final.sum()) <= int(few.sum()) < int(clean.sum())
    details = {c.name: c.detail for c in cascade.checks}
    assert f"{int(many.sum()) / n:.4f} at {threat.steps * 2}" in details["more-steps"]
    assert f"robust {int(large.sum()) / n:.4f}" in details["large-epsilon"]
