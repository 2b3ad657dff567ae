"""QLoRA: stage 3 on a 4-bit (nf4) language model trains on the CPU, and its checkpoint loads back 4-bit."""

import torch

from tests.training.fixtures import make_config
from training.model_setup import load_checkpoint
from training.run import build_trainer, prepare, run_stage
from training.stages import canonical_name


def test_qlora_runs_one_step_on_cpu(tmp_path, bench, base_checkpoint):
    import bitsandbytes as bnb

    config = make_config(tmp_path, bench, base_checkpoint, 3, model={"load_4bit": True},
                         train={"max_steps": 2, "learning_rate": 1e-2})
    prepared = prepare(config)
    trainer, stage_model = build_trainer(config, prepared)
    core = stage_model.core
    q_proj = core.language_model.model.layers[0].self_attn.q_proj
    assert isinstance(q_proj.base_layer, bnb.nn.Linear4bit) and stage_model.quantization == "4bit-nf4"
    assert not isinstance(core.language_model.lm_head, bnb.nn.Linear4bit)        # kept unquantised
    before = {canonical_name(n): p.detach().clone() for n, p in core.named_parameters()}
    result = run_stage(config, prepared, trainer)
    after = {canonical_name(n): p.detach() for n, p in core.named_parameters()}
    assert all(torch.isfinite(torch.tensor(e["loss"])) for e in trainer.state.log_history if "loss" in e)
    for name in stage_model.trained_names:
        if ".lora_A." not in name:                      # B and the projector move; A after B is non-zero
            assert not torch.equal(before[name], after[name]), name
    for name in set(before) - stage_model.trained_names:
        assert torch.equal(before[name], after[name]), name

    loaded = load_checkpoint(str(result.output_dir))                     # 4-bit again, as trained
    assert loaded.quantization == "4bit-nf4" and loaded.core.config.is_trained
    batch = trainer.data_collator([prepared.data.train[i] for i in range(2)])
    with torch.no_grad():
        expected = stage_model.core.eval()(**batch).logits
        assert torch.equal(loaded.core(**batch).logits, expected)
