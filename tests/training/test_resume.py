"""Resume: a run interrupted after its last checkpoint and resumed ends exactly where an uninterrupted one does.

Stage 3 exercises everything that must be restored: shuffled data over several epochs, gradient
accumulation, LoRA dropout (RNG), AdamW state, the cosine schedule with warmup, two param groups.
"""

import json

import pytest
import torch
from transformers import TrainerCallback

from tests.training.fixtures import make_config
from training.checkpoint_io import TRAINED_WEIGHTS, read_tensors
from training.config import ConfigError
from training.run import build_trainer, prepare, run_stage

STEPS, SAVE_EVERY, CRASH_AFTER = 8, 3, 5


class _Crash(TrainerCallback):
    """Stops training after `step`, as a crash would (no final save)."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            control.should_training_stop = True
            control.should_save = False


def _config(tmp_path, bench, base, name, **train):
    # 12 items, batch 2 x 2 accumulation: 3 optimizer steps per epoch, so 8 steps span three epochs
    return make_config(tmp_path, bench, base, 3, name=f"{name}.yaml", data={"max_items": 12},
                       train={"output_dir": str(tmp_path / name), "max_steps": STEPS, "save_steps": SAVE_EVERY,
                              "effective_batch_size": 4, "per_device_batch_size": 2, "lr_scheduler": "cosine",
                              "warmup_ratio": 0.2, "learning_rate": 5e-3, "projector_lr": 1e-3} | train)


def _losses(trainer) -> dict[int, float]:
    return {entry["step"]: entry["loss"] for entry in trainer.state.log_history if "loss" in entry}


def test_resume_reproduces_an_uninterrupted_run(tmp_path, bench, base_checkpoint):
    straight = _config(tmp_path, bench, base_checkpoint, "straight")
    result = run_stage(straight)
    expected = read_tensors(result.output_dir, TRAINED_WEIGHTS)

    crashed = _config(tmp_path, bench, base_checkpoint, "crashed")
    trainer, _ = build_trainer(crashed, prepare(crashed))
    trainer.add_callback(_Crash(CRASH_AFTER))
    trainer.train()
    assert trainer.state.global_step == CRASH_AFTER
    assert sorted(p.name for p in (tmp_path / "crashed").glob("checkpoint-*")) == ["checkpoint-3"]

    with pytest.raises(ConfigError, match="already holds 1 checkpoint"):
        prepare(_config(tmp_path, bench, base_checkpoint, "crashed"))          # never overwritten by accident
    resumed_config = _config(tmp_path, bench, base_checkpoint, "crashed", resume_from_checkpoint="last")
    resumed_trainer, _ = build_trainer(resumed_config, prepare(resumed_config))
    resumed = run_stage(resumed_config, trainer=resumed_trainer)
    assert resumed.summary["global_step"] == STEPS
    got = read_tensors(resumed.output_dir, TRAINED_WEIGHTS)
    assert got.keys() == expected.keys()
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=0, atol=1e-6, msg=name)
    straight_losses = _logged_losses(result.output_dir)
    resumed_losses = _losses(resumed_trainer)
    for step in range(SAVE_EVERY + 1, STEPS + 1):                # the steps the resumed run redid
        assert resumed_losses[step] == pytest.approx(straight_losses[step], abs=1e-6), step


def _logged_losses(output_dir) -> dict[int, float]:
    rows = [json.loads(line) for line in (output_dir / "metrics.jsonl").read_text().splitlines()]
    return {row["step"]: row["loss"] for row in rows if "loss" in row}
