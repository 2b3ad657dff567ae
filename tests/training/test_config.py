"""Configs: the shipped recipes, overrides, and clear errors before any training starts."""

import json
from pathlib import Path

import pytest

from tests.helpers.tiny_models import write_features_h5, write_slide_tokens_pt
from tests.training.fixtures import config_dict, image, make_config, write_config
from training.config import ConfigError
from training.config_loading import load_config, parse_overrides
from training.errors import TrainingError
from training.run import prepare

CONFIGS = Path(__file__).resolve().parents[2] / "training" / "configs"


def test_shipped_stage_configs_carry_the_recipe_defaults():
    stage3 = load_config(CONFIGS / "stage3.yaml")
    assert (stage3.lora.r, stage3.lora.alpha, stage3.lora.dropout) == (128, 256, 0.05)
    assert (stage3.train.learning_rate, stage3.train.projector_lr) == (2e-4, 2e-5)
    assert (stage3.train.lr_scheduler, stage3.train.warmup_ratio, stage3.train.num_train_epochs) == ("cosine", 0.03, 3)
    assert (stage3.data.max_length, stage3.train.effective_batch_size, stage3.train.weight_decay) == (2048, 128, 0.0)
    assert stage3.learning_rate_for("projector_lr") == 2e-5 and stage3.learning_rate_for("learning_rate") == 2e-4
    assert load_config(CONFIGS / "stage1.yaml").alignment.text_encoder.startswith("microsoft/BiomedNLP-BiomedBERT")
    assert load_config(CONFIGS / "stage2.yaml").train.learning_rate == 1e-3
    for stage in (1, 2, 3):
        tiny = load_config(CONFIGS / "tiny.yaml", stage=stage)
        assert tiny.train.output_dir == f"runs/tiny-stage{stage}" and tiny.model.base_model == "wsi-llava-tiny-random"
    for name in ("zero2.json", "zero3.json"):
        assert json.loads((CONFIGS / name).read_text())["zero_optimization"]["stage"] == int(name[4])


def test_overrides_are_typed_and_checked(tmp_path, bench, base_checkpoint):
    overrides = parse_overrides(["--train.learning_rate", "3e-5", "--data.tasks=grading,staging_choice",
                                 "--alignment.recall_at", "[1, 3]", "--model.load_4bit", "true",
                                 "--model.init_from", "[runs/stage1, runs/stage2]"])
    path = write_config(tmp_path / "c.yaml", config_dict(tmp_path, bench, base_checkpoint, 3))
    config = load_config(path, overrides=overrides)
    assert config.train.learning_rate == 3e-5 and config.data.tasks == ["grading", "staging_choice"]
    assert config.alignment.recall_at == [1, 3] and config.model.load_4bit is True
    assert config.model.init_from == ["runs/stage1", "runs/stage2"]
    with pytest.raises(ConfigError, match=r"unknown key 'train.learnig_rate'. Did you mean 'learning_rate'"):
        load_config(path, overrides=[("train.learnig_rate", "1")])
    with pytest.raises(ConfigError, match="c.yaml: train.max_steps: must be an integer, got 'many'"):
        load_config(path, overrides=[("train.max_steps", "many")])
    with pytest.raises(ConfigError, match="overrides look like --section.key VALUE"):
        parse_overrides(["learning_rate", "1"])


@pytest.mark.parametrize("change, message", [
    ({"stage": 4}, r"c.yaml: stage: 4 is not a training stage; choose one of \[1, 2, 3\]"),
    ({"trian": {}}, r"unknown section 'trian'. Did you mean 'train'"),
    ({"train": {"eval_strategy": False}}, "quote it"),
    ({"train": {"effective_batch_size": 3}}, "train.effective_batch_size: 3 is not a multiple of per_device_batch_size"),
    ({"train": {"eval_strategy": "steps", "eval_steps": 2}}, "needs validation data"),
    ({"lora": {"dropout": 1.5}}, r"lora.dropout: must be in \[0, 1\)"),
    ({"model": {"load_4bit": True}, "stage": 2}, "4-bit .QLoRA. is for stage 3 only"),
    ({"model": {"base_model": ""}}, "model.base_model: is required"),
])
def test_bad_values_name_the_file_and_key(change, message, tmp_path, bench, base_checkpoint):
    data = config_dict(tmp_path, bench, base_checkpoint, 3)
    for key, value in change.items():
        data[key] = value if not isinstance(value, dict) else data.get(key, {}) | value
    with pytest.raises(ConfigError, match=message):
        load_config(write_config(tmp_path / "c.yaml", data))


def test_stage_from_the_command_line_must_agree_with_the_file(tmp_path, bench, base_checkpoint):
    path = write_config(tmp_path / "c.yaml", config_dict(tmp_path, bench, base_checkpoint, 3))
    with pytest.raises(ConfigError, match="says stage 3 but --stage 2"):
        load_config(path, stage=2)


def _assert_nothing_trained(config) -> None:
    assert not Path(config.train.output_dir).exists()


def test_missing_paths_and_bad_features_fail_before_training(tmp_path, bench, base_checkpoint):
    config = make_config(tmp_path, bench, base_checkpoint, 3, data={"train": str(tmp_path / "nope")})
    with pytest.raises(ConfigError, match=r"data.train: .*nope does not exist"):
        prepare(config)
    config = make_config(tmp_path, bench, base_checkpoint, 3, data={"features_root": str(tmp_path / "none")})
    with pytest.raises(ConfigError, match="data.features_root: .*none is not a folder"):
        prepare(config)
    for dim, message in ((48, "48-d but tiny-test-model takes 32-d tokens and the extra channels are not zero padding"), (24, r"slide tokens are 24-d but tiny-test-model takes 32-d")):
        wrong = tmp_path / f"tokens-{dim}"
        for p in bench.patients:                                   # not the model's 32-d slide tokens
            (wrong / image(p)).parent.mkdir(parents=True, exist_ok=True)
            write_slide_tokens_pt(wrong / image(p), num_tokens=8, dim=dim, padded_from=None)
        config = make_config(tmp_path, bench, base_checkpoint, 3, data={"features_root": str(wrong)})
        with pytest.raises(TrainingError, match=message):
            prepare(config)
    narrow = tmp_path / "features-12d"
    for p in bench.patients:                                       # 12-d tile features, the model takes 16-d
        (narrow / image(p)).parent.mkdir(parents=True, exist_ok=True)
        write_features_h5((narrow / image(p)).with_suffix(".h5"), n_tiles=10, dim=12)
    config = make_config(tmp_path, bench, base_checkpoint, 1, data={"features_root": str(narrow)})
    with pytest.raises(TrainingError, match=r"features are 12-d but .* expects 16-d"):
        prepare(config)
    config = make_config(tmp_path, bench, base_checkpoint, 1, data={"features_root": str(bench.pt_root)})
    with pytest.raises(TrainingError, match="Stage 1 trains the slide encoder, so it needs tile-feature .h5"):
        prepare(config)
    _assert_nothing_trained(config)
    config = make_config(tmp_path, bench, base_checkpoint, 3, train={"deepspeed": str(Path(CONFIGS / "zero2.json"))})
    with pytest.raises(ConfigError, match="deepspeed package is not installed"):
        prepare(config)


def test_missing_features_are_counted_and_never_zero_filled(tmp_path, bench, base_checkpoint):
    partial = tmp_path / "partial"
    for p in bench.patients[:5]:
        target = partial / image(p)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((bench.pt_root / image(p)).read_bytes())
    config = make_config(tmp_path, bench, base_checkpoint, 3, data={"features_root": str(partial)})
    with pytest.raises(TrainingError, match=r"3 slide\(s\) \(12 item\(s\)\) have no slide inputs.*skip"):
        prepare(config)
    config = make_config(tmp_path, bench, base_checkpoint, 3, data={"features_root": str(partial),
                                                                   "skip_missing_features": True})
    data = prepare(config).data
    summary = data.summary
    assert summary["n_train"] == 20 and summary["missing_features"]["train"]["n_items_missing_inputs"] == 12
    assert sorted(data.dropped["slides_without_features"]["train"]) == sorted(image(p) for p in bench.patients[5:])
    assert summary["train_tasks"] == {"grading": 5, "prognosis": 5, "report_generation": 5, "staging_choice": 5}


def test_validation_is_split_by_patient_and_a_given_val_set_must_not_share_patients(tmp_path, bench,
                                                                                     base_checkpoint):
    data = prepare(make_config(tmp_path, bench, base_checkpoint, 2, data={"val_fraction": 0.4})).data
    train_patients = {row["slide_id"][:12] for row in data.train}
    val_patients = {row["slide_id"][:12] for row in data.val}
    assert train_patients and val_patients and not train_patients & val_patients
    config = make_config(tmp_path, bench, base_checkpoint, 3, data={"val": str(bench.folder / "Grading_train.json")})
    with pytest.raises(TrainingError, match="data.val shares 8 patient"):
        prepare(config)


def test_training_data_from_a_hub_dataset(tmp_path, bench, base_checkpoint, hub):
    files = {path.name: path.read_bytes() for path in bench.folder.iterdir()}
    hub.state.upload("tester/wsi-bench-mini", files, repo_type="dataset")
    config = make_config(tmp_path, bench, base_checkpoint, 3, data={"train": "tester/wsi-bench-mini"})
    data = prepare(config).data
    assert data.summary["n_train"] == 32 and data.summary["train_source"] == "tester/wsi-bench-mini"
    assert data.train[0]["conversations"].startswith('[{"from": "human"')
