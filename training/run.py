"""One training run, start to finish: check -> data -> model -> Trainer -> checkpoint, card, summary -> push.

Everything that can be wrong with the config, the data or the features is found by `prepare` before a
model is built or a step is taken. `run_stage` then trains with `StageTrainer` and writes to
`train.output_dir`: checkpoint-N folders (resumable), the final checkpoint (trained weights +
manifest), README.md (model card), summary.json, metrics.jsonl and tensorboard/.

    from training.config_loading import load_config
    result = run_stage(load_config("training/configs/tiny.yaml", stage=3))
    print(result.output_dir, result.metrics)
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

from common.atomic import atomic_write_json, atomic_write_text
from training.checkpoint_io import MODEL_CARD
from training.config import RunConfig
from training.config_loading import check_environment, config_to_dict
from training.errors import TrainingError

SUMMARY = "summary.json"
METRICS_JSONL = "metrics.jsonl"


@dataclass
class Prepared:
    config: RunConfig
    model_config: object          # the base WsiLlavaConfig
    data: object                  # training.stage_data.StageData


@dataclass
class RunResult:
    output_dir: Path
    metrics: dict
    summary: dict
    pushed: str | None = None


def prepare(config: RunConfig) -> Prepared:
    """Validate paths, read the base config and every example, check feature files. No model weights load."""
    from training.base_models import load_base_config
    from training.stage_data import prepare_stage_data

    check_environment(config)
    model_config = load_base_config(config.model.base_model, config.model.base_model_revision)
    return Prepared(config, model_config, prepare_stage_data(config, model_config))


def _yaml(config: RunConfig) -> str:
    import yaml

    return yaml.safe_dump(config_to_dict(config), sort_keys=False)


def gradient_accumulation(config: RunConfig) -> int:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    per_step = config.train.per_device_batch_size * world
    if config.train.effective_batch_size % per_step:
        raise TrainingError(f"train.effective_batch_size={config.train.effective_batch_size} is not a multiple of "
                            f"per_device_batch_size x processes = {per_step}.")
    return config.train.effective_batch_size // per_step


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def training_arguments(config: RunConfig):
    from transformers import TrainingArguments

    try:
        return _arguments(TrainingArguments, config)
    except ValueError as exc:
        raise TrainingError(f"{config.source}: transformers rejected the training settings (train.*): {exc}") from exc


def _arguments(TrainingArguments, config: RunConfig):
    t = config.train
    return TrainingArguments(
        output_dir=t.output_dir, per_device_train_batch_size=t.per_device_batch_size,
        per_device_eval_batch_size=t.per_device_eval_batch_size, gradient_accumulation_steps=gradient_accumulation(config),
        num_train_epochs=t.num_train_epochs, max_steps=t.max_steps, learning_rate=t.learning_rate,
        lr_scheduler_type=t.lr_scheduler, warmup_steps=t.warmup_ratio, weight_decay=t.weight_decay,
        max_grad_norm=t.max_grad_norm, seed=t.seed, bf16=t.bf16, fp16=t.fp16,
        activation_checkpointing=t.gradient_checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False} if t.gradient_checkpointing else None,
        logging_steps=t.logging_steps, logging_first_step=True, save_strategy="steps", save_steps=t.save_steps,
        save_total_limit=t.save_total_limit, eval_strategy=t.eval_strategy, eval_steps=t.eval_steps,
        report_to="none", disable_tqdm=not t.progress_bar, remove_unused_columns=False,
        dataloader_num_workers=t.dataloader_num_workers, dataloader_pin_memory=_cuda_available(),
        use_cpu=not _cuda_available(),
        deepspeed=t.deepspeed,
        label_names=["labels"] if config.spec.model_kind == "wsi_llava" else [],
        prediction_loss_only=True,                 # validation keeps the loss, never [N, L, vocab] logits
    )


def _hyperparameters(config: RunConfig, args) -> dict:
    t = config.train
    values = {"stage": config.stage, "epochs": t.num_train_epochs, "max_steps": t.max_steps,
              "effective_batch_size": t.effective_batch_size, "per_device_batch_size": t.per_device_batch_size,
              "gradient_accumulation_steps": args.gradient_accumulation_steps, "learning_rate": t.learning_rate,
              "lr_scheduler": t.lr_scheduler, "warmup_ratio": t.warmup_ratio, "weight_decay": t.weight_decay,
              "max_grad_norm": t.max_grad_norm, "seed": t.seed, "bf16": t.bf16, "fp16": t.fp16,
              "gradient_checkpointing": t.gradient_checkpointing, "max_length": config.data.max_length,
              "model_dtype": config.model.dtype, "deepspeed": t.deepspeed}
    for group in config.spec.trains:
        values[f"lr ({group.name})"] = config.learning_rate_for(group.lr_setting)
    if config.spec.lora:
        values |= {"lora_r": config.lora.r, "lora_alpha": config.lora.alpha, "lora_dropout": config.lora.dropout,
                   "qlora_4bit": config.model.load_4bit}
    if config.stage == 1:
        a = config.alignment
        values |= {"text_encoder": a.text_encoder, "text_pooling": a.text_pooling, "embed_dim": a.embed_dim,
                   "init_temperature": a.init_temperature, "text_max_length": config.data.text_max_length}
    return values


def _latest_metrics(log_history: list[dict]) -> dict:
    """The last value of every eval_*/train_* metric, plus the last logged training loss."""
    metrics: dict = {}
    for entry in log_history:
        metrics |= {k: v for k, v in entry.items() if k.startswith(("eval_", "train_"))
                    and isinstance(v, (int, float)) and math.isfinite(v)}
        if "loss" in entry:
            metrics["last_logged_loss"] = entry["loss"]
    return metrics


def _collator(prepared: Prepared, stage_model):
    from training.collators import AlignmentCollator, InstructionCollator

    if stage_model.spec.model_kind == "aligner":
        return AlignmentCollator(stage_model.text_tokenizer, prepared.model_config, prepared.config.data.text_max_length)
    return InstructionCollator(stage_model.processor, stage_model.core.config, prepared.config.data.max_length)


def build_trainer(config: RunConfig, prepared: Prepared):
    """(StageTrainer, StageModel) for `config`, ready for `trainer.train()`."""
    import transformers
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    from training.callbacks import (
        ConsoleCallback,
        JsonlMetricsCallback,
        tensorboard_callback,
    )
    from training.model_setup import build_for_training
    from training.trainer import StageTrainer

    stage_model = build_for_training(config)
    args = training_arguments(config)
    out = Path(config.train.output_dir)
    hyperparameters = _hyperparameters(config, args)
    if stage_model.spec.model_kind == "wsi_llava":      # the trained model's config, marked trained
        model_config = stage_model.core.config.to_dict() | {"is_trained": True}
    else:                                                # stage 1: the base the slide encoder came from
        model_config = prepared.model_config.to_dict()
    counts = stage_model.parameter_counts()
    if stage_model.spec.model_kind == "wsi_llava":
        stage_model.core.language_model.config.use_cache = False     # no KV cache while training

    def manifest_for(state) -> dict:
        return {"stage": config.stage, "stage_name": config.spec.name, "stage_title": config.spec.title,
                "rebuild": stage_model.rebuild, "model_config": model_config,
                "trained_parameters": {g: counts[g] for g in stage_model.groups}, "total_parameters": counts["total"],
                "inherited": stage_model.init_from, "global_step": state.global_step,
                "epoch": state.epoch, "hyperparameters": hyperparameters, "data": prepared.data.summary,
                "metrics": _latest_metrics(state.log_history), "config_file": config.source,
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "versions": {"transformers": transformers.__version__}}

    callbacks = [ConsoleCallback(config.stage), JsonlMetricsCallback(out / METRICS_JSONL)]
    if config.train.tensorboard and int(os.environ.get("RANK", "0")) == 0:
        callbacks.append(tensorboard_callback(out / "tensorboard"))
    trainer = StageTrainer(model=stage_model.model, args=args, train_dataset=prepared.data.train,
                           eval_dataset=prepared.data.val, data_collator=_collator(prepared, stage_model),
                           callbacks=callbacks, stage_model=stage_model, run_config=config,
                           manifest_for=manifest_for, run_config_yaml=_yaml(config))
    if not config.train.progress_bar:
        for default_printer in (PrinterCallback, ProgressCallback):
            trainer.remove_callback(default_printer)
    return trainer, stage_model


def run_stage(config: RunConfig, prepared: Prepared | None = None, trainer=None) -> RunResult:
    """Train `config`'s stage; returns where the checkpoint is and the final metrics.

    `trainer` (from `build_trainer`) lets a caller add callbacks or inspect the model first.
    """
    prepared = prepared or prepare(config)
    started = time.time()
    if trainer is None:
        trainer, _ = build_trainer(config, prepared)
    stage_model = trainer.stage_model
    out = Path(config.train.output_dir)
    resume = config.train.resume_from_checkpoint
    trainer.train(resume_from_checkpoint=True if resume == "last" else resume)
    evaluated_steps = [entry["step"] for entry in trainer.state.log_history if "eval_loss" in entry]
    if prepared.data.val is not None and (not evaluated_steps or evaluated_steps[-1] != trainer.state.global_step):
        trainer.evaluate()
    if stage_model.spec.model_kind == "wsi_llava":
        stage_model.core.config.is_trained = True
    trainer.save_model(str(out))                   # the final checkpoint: StageTrainer._save, manifest last
    metrics = _latest_metrics(trainer.state.log_history)
    if not trainer.args.should_save:
        return RunResult(out, metrics, {})
    from training.checkpoint_io import read_manifest
    from training.model_card import render_model_card

    manifest = read_manifest(out)
    atomic_write_text(out / MODEL_CARD, render_model_card(manifest, config.hub.push_to_hub))
    summary = {"status": "trained", "stage": config.stage, "config": config.source, "output_dir": str(out),
               "global_step": trainer.state.global_step, "seconds": round(time.time() - started, 1),
               "data": prepared.data.summary, "dropped": prepared.data.dropped, "metrics": manifest["metrics"],
               "trained_parameters": manifest["trained_parameters"], "resumed_from": resume}
    atomic_write_json(out / SUMMARY, summary, indent=2, default=str)
    pushed = None
    if config.hub.push_to_hub:
        from training.hub_publish import push_checkpoint

        pushed = push_checkpoint(out, config.hub.push_to_hub, private=config.hub.private)
    return RunResult(out, manifest["metrics"], summary, pushed)
