"""Checkpoints: pushed to the loopback Hub stand-in and loaded back, the outputs are identical."""

import json

import pytest
import torch

from modeling.checkpoints import load_model
from tests.training.fixtures import make_config
from training.checkpoint_io import INHERITED_WEIGHTS, MANIFEST, TRAINED_WEIGHTS
from training.errors import TrainingError
from training.hub_publish import main as push_model_main
from training.merge_export import merge_checkpoint
from training.model_setup import as_loaded_model, load_checkpoint
from training.run import build_trainer, prepare, run_stage

REPO = "tester/wsi-llava-stage3"


def _outputs(model, batch) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(**batch).logits


def test_stage3_checkpoint_pushed_to_the_hub_loads_back_identically(tmp_path, bench, base_checkpoint, hub, capsys):
    stage2 = make_config(tmp_path, bench, base_checkpoint, 2, name="s2.yaml")
    run_stage(stage2)
    config = make_config(tmp_path, bench, base_checkpoint, 3, model={"init_from": [stage2.train.output_dir]},
                         data={"val_fraction": 0.3}, train={"eval_strategy": "steps", "eval_steps": 1})
    prepared = prepare(config)
    trainer, stage_model = build_trainer(config, prepared)
    result = run_stage(config, prepared, trainer)
    batch = trainer.data_collator([prepared.data.train[i] for i in range(2)])

    assert push_model_main([str(result.output_dir), REPO]) == 0
    assert "base model" in capsys.readouterr().err                       # local base folder: warned
    files = hub.state.files(REPO)
    assert {MANIFEST, TRAINED_WEIGHTS, "README.md", "run_config.yaml", "summary.json", "metrics.jsonl"} <= set(files)
    assert INHERITED_WEIGHTS not in files                                 # the stage-2 projector trains further here
    assert not any(name.startswith(("checkpoint-", "tensorboard")) for name in files)
    card = files["README.md"].decode()
    for expected in ("Not for clinical use", f"# {REPO}", str(base_checkpoint), "lr (LoRA)", "lora_r",
                     "eval_loss", "Intended use", "Limitations", "grading", "only be loaded where that folder exists"):
        assert expected in card, expected
    manifest = json.loads(files[MANIFEST])
    assert manifest["rebuild"]["base_model"] == str(base_checkpoint) and manifest["model_config"]["is_trained"]
    assert manifest["inherited"][0]["stage"] == 2 and manifest["inherited"][0]["trained_here"]

    loaded = load_checkpoint(REPO)
    assert torch.equal(_outputs(stage_model.core, batch), _outputs(loaded.core, batch))
    banner = as_loaded_model(loaded, REPO).banner()
    assert "trained weights" in banner and REPO in banner

    merged = merge_checkpoint(REPO, tmp_path / "merged")                 # standalone, any loader opens it
    standalone = load_model(str(merged), device="cpu")
    assert standalone.is_trained and "trained weights" in standalone.banner()
    torch.testing.assert_close(_outputs(standalone.model, batch), _outputs(stage_model.core, batch),
                               rtol=1e-4, atol=1e-5)
    with pytest.raises(TrainingError, match="already exists"):
        merge_checkpoint(REPO, merged)


def test_stage1_checkpoint_loads_back_identically(tmp_path, bench, base_checkpoint):
    config = make_config(tmp_path, bench, base_checkpoint, 1, data={"val_fraction": 0.3})
    prepared = prepare(config)
    trainer, stage_model = build_trainer(config, prepared)
    result = run_stage(config, prepared, trainer)
    assert result.metrics["eval_slide_to_report_recall@1"] >= 0 and "eval_report_to_slide_recall@2" in result.metrics
    batch = trainer.data_collator([prepared.data.train[i] for i in range(3)])
    loaded = load_checkpoint(str(result.output_dir))
    for model in (stage_model.core, loaded.core):
        model.eval()
    with torch.no_grad():
        a, b = stage_model.core(**batch), loaded.core(**batch)
    assert torch.equal(a["slide_embeds"], b["slide_embeds"]) and torch.equal(a["text_embeds"], b["text_embeds"])
    with pytest.raises(TrainingError, match="no language model"):
        as_loaded_model(loaded, "stage1")
    with pytest.raises(TrainingError, match="stage 1"):
        merge_checkpoint(str(result.output_dir), tmp_path / "merged1")


def test_push_model_rejects_a_folder_that_is_no_checkpoint(tmp_path, capsys, hub):
    assert push_model_main([str(tmp_path), REPO]) == 1
    assert "not a training checkpoint" in capsys.readouterr().err
