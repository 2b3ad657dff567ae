"""Overfit check: a short run on four fixed items drives each stage's training loss down clearly."""

import json

import pytest

from tests.helpers.tiny_models import save_tiny_checkpoint
from tests.training.fixtures import make_config
from training.run import run_stage

# stage -> (learning rate, steps, final loss must be below this fraction of the first)
RUNS = {1: (3e-3, 40, 0.05), 2: (1e-2, 30, 0.75), 3: (1e-2, 30, 0.1)}


@pytest.fixture(scope="module")
def steerable_base(tmp_path_factory):
    """The tiny model with larger initial weights: a frozen random LLM with the default 0.02 init has
    near-uniform logits (loss ~ ln V) that a projector alone cannot move; 0.2 leaves room to learn."""
    return save_tiny_checkpoint(tmp_path_factory.mktemp("steerable") / "base",
                                text_overrides={"initializer_range": 0.2})


@pytest.mark.parametrize("stage", [1, 2, 3])
def test_short_run_on_fixed_items_drives_the_loss_down(stage, tmp_path, bench, steerable_base):
    lr, steps, fraction = RUNS[stage]
    config = make_config(tmp_path, bench, steerable_base, stage, data={"max_items": 4},
                         train={"max_steps": steps, "learning_rate": lr, "projector_lr": lr,
                                "effective_batch_size": 4, "per_device_batch_size": 4})
    result = run_stage(config)
    rows = [json.loads(line) for line in (result.output_dir / "metrics.jsonl").read_text().splitlines()]
    losses = [row["loss"] for row in rows if "loss" in row]
    assert len(losses) == steps
    assert losses[-1] < fraction * losses[0], f"stage {stage}: loss {losses[0]:.3f} -> {losses[-1]:.3f}"
