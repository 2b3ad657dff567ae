"""The stage table: after one optimizer step exactly the trained parameters changed, for every stage."""

import pytest
import torch
from transformers import TrainerCallback

from tests.training.fixtures import make_config
from training.errors import TrainingError
from training.run import build_trainer, prepare
from training.stages import STAGES, apply_stage, canonical_name, classify


def _snapshot(model) -> dict[str, torch.Tensor]:
    return {canonical_name(n): p.detach().clone().float() for n, p in model.named_parameters()}


class _SnapshotAfterStep(TrainerCallback):
    def __init__(self, model):
        self.model, self.snapshots = model, []

    def on_step_end(self, args, state, control, **kwargs):
        self.snapshots.append(_snapshot(self.model))


@pytest.mark.parametrize("stage", [1, 2, 3])
def test_one_step_changes_exactly_the_trained_parameters(stage, tmp_path, bench, base_checkpoint):
    # LoRA B starts at zero, so LoRA A gets no gradient in the first step: stage 3 takes a second step
    # to show A trains too (still exactly the table's parameters, and frozen ones never move).
    steps = 2 if stage == 3 else 1
    config = make_config(tmp_path, bench, base_checkpoint, stage, train={"max_steps": steps})
    trainer, stage_model = build_trainer(config, prepare(config))
    snapshots = _SnapshotAfterStep(stage_model.core)
    trainer.add_callback(snapshots)
    before = _snapshot(stage_model.core)
    trainer.train()
    after_one, after_all = snapshots.snapshots[0], snapshots.snapshots[-1]
    trained = stage_model.trained_names
    assert set(stage_model.groups) == {g.name for g in STAGES[stage].trains}
    for name, value in before.items():
        if name not in trained:
            assert torch.equal(value, after_all[name]), f"stage {stage}: frozen {name} changed"
        elif ".lora_A." in name:
            assert torch.equal(value, after_one[name]) and not torch.equal(value, after_all[name]), name
        else:
            assert not torch.equal(value, after_one[name]), f"stage {stage}: trained {name} did not change"
    requires_grad = {canonical_name(n) for n, p in stage_model.core.named_parameters() if p.requires_grad}
    assert requires_grad == trained
    if stage == 1:
        assert any(n.startswith("slide_encoder.") for n in trained) and "logit_scale" in trained
        assert not any(n.startswith("text_encoder.") for n in trained)
    if stage == 2:
        assert trained == {n for n in before if n.startswith("projector.")}
    if stage == 3:
        lora = set(stage_model.groups["LoRA"])
        assert lora and all(".lora_A." in n or ".lora_B." in n for n in lora)
        assert not any("lm_head" in n for n in lora)
        wrapped = {n.split(".lora_")[0] for n in lora}
        assert len(wrapped) == 2 * 7                          # 2 layers x q, k, v, o, gate, up, down


def test_stage3_optimizer_groups_follow_the_recipe(tmp_path, bench, base_checkpoint):
    config = make_config(tmp_path, bench, base_checkpoint, 3, train={"learning_rate": 2e-4, "projector_lr": 2e-5})
    trainer, stage_model = build_trainer(config, prepare(config))
    optimizer = trainer.create_optimizer()
    lrs = {group["group_name"]: group["lr"] for group in optimizer.param_groups}
    assert lrs["LoRA"] == 2e-4 and lrs["projector"] == 2e-5
    counted = sum(p.numel() for group in optimizer.param_groups for p in group["params"])
    assert counted == sum(stage_model.parameter_counts()[g] for g in stage_model.groups)


def test_a_parameter_outside_the_table_is_an_error():
    module = torch.nn.Module()
    module.projector = torch.nn.Linear(2, 2)
    module.mystery = torch.nn.Linear(2, 2)
    with pytest.raises(TrainingError, match="'mystery.weight' is in no entry of stage 2's table"):
        apply_stage(module, STAGES[2])
    assert classify("base_model.model.projector.0.weight", STAGES[3]) == "projector"
    assert classify("language_model.model.layers.0.mlp.up_proj.lora_B.default.weight", STAGES[3]) == "LoRA"
    assert classify("language_model.lm_head.weight", STAGES[3]) is None
