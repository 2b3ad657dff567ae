"""`StageTrainer`: the Hugging Face Trainer with the stage table's optimizer groups and delta checkpoints.

What it changes, and nothing else:
- `create_optimizer`: one AdamW group per trained group of the stage table, each with its own
  learning rate (stage 3: LoRA `train.learning_rate`, projector `train.projector_lr`), as LLaVA's
  trainer does with `mm_projector_lr`.
- `_save` / `_load_from_checkpoint`: checkpoints hold only the trained parameters plus the manifest
  (`training.checkpoint_io`); resuming loads them back into the rebuilt model. Optimizer, scheduler,
  RNG and data position are saved and restored by the Trainer itself, so a resumed run continues
  exactly. Under DeepSpeed the Trainer passes the gathered state dict to `_save`.
- `evaluate` (stage 1): report-retrieval recall@k and the contrastive loss over the whole validation set.
- `log`: adds each optimizer group's current learning rate (`lr/<group>`).
"""

from __future__ import annotations

import torch
from transformers import Trainer

from training.alignment_model import contrastive_loss, retrieval_recall
from training.checkpoint_io import (
    TRAINED_WEIGHTS,
    load_tensors_into,
    read_manifest,
    read_tensors,
    save_checkpoint,
    trained_tensors,
)
from training.errors import TrainingError
from training.stages import optimizer_groups


class StageTrainer(Trainer):
    def __init__(self, *args, stage_model, run_config, manifest_for, run_config_yaml: str, **kwargs):
        self.stage_model = stage_model
        self.run_config = run_config
        self.manifest_for = manifest_for          # TrainerState -> manifest dict
        self.run_config_yaml = run_config_yaml
        super().__init__(*args, **kwargs)

    # -- optimizer ------------------------------------------------------------------------------------
    def create_optimizer(self, model=None):
        if self.optimizer is None:
            model = self.model if model is None else model
            groups = optimizer_groups(model, self.stage_model.spec, self.run_config.learning_rate_for,
                                      self.args.weight_decay)
            optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, model)
            self.optimizer = optimizer_cls(groups, **optimizer_kwargs)
        return self.optimizer

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs and self.optimizer is not None:
            for group in self.optimizer.param_groups:
                if "group_name" in group and not group["group_name"].endswith("(no decay)"):
                    logs[f"lr/{group['group_name']}"] = group["lr"]
        super().log(logs, start_time)

    # -- checkpoints ----------------------------------------------------------------------------------
    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        if not self.args.should_save:
            return
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        trained = trained_tensors(self.stage_model.core, self.stage_model.trained_names, state_dict)
        save_checkpoint(output_dir, self.manifest_for(self.state), trained, self.stage_model.inherited,
                        self.run_config_yaml)

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        manifest = read_manifest(resume_from_checkpoint)
        current = self.stage_model.rebuild
        for key in ("stage", "base_model", "base_model_revision", "lora"):
            if manifest["rebuild"].get(key) != current.get(key):
                raise TrainingError(f"cannot resume from {resume_from_checkpoint}: it was trained with {key}="
                                    f"{manifest['rebuild'].get(key)!r}, this run has {current.get(key)!r}.")
        load_tensors_into(self.stage_model.core, read_tensors(resume_from_checkpoint, TRAINED_WEIGHTS),
                          f"{resume_from_checkpoint}/{TRAINED_WEIGHTS}", expected=self.stage_model.trained_names)

    # -- stage 1 evaluation ---------------------------------------------------------------------------
    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval") -> dict[str, float]:
        if self.stage_model.spec.model_kind != "aligner":
            return super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)
        dataloader = self.get_eval_dataloader(eval_dataset)
        model = self.model
        was_training = model.training
        model.eval()
        slides, texts = [], []
        with torch.no_grad():
            for batch in dataloader:
                batch = self._prepare_inputs(batch)
                with self.autocast_smart_context_manager():
                    outputs = model(**batch)
                slide, text = self.accelerator.gather_for_metrics((outputs["slide_embeds"], outputs["text_embeds"]))
                slides.append(slide.float().cpu())
                texts.append(text.float().cpu())
        model.train(was_training)
        slide, text = torch.cat(slides), torch.cat(texts)                    # [N, K] each
        core = self.stage_model.core
        scale = core.scale().detach().float().cpu()
        metrics = {"loss": float(contrastive_loss(slide, text, scale)), "temperature": float(1.0 / scale),
                   "pairs": slide.shape[0]}
        metrics |= retrieval_recall(slide, text, self.run_config.alignment.recall_at)
        metrics = {f"{metric_key_prefix}_{key}": value for key, value in metrics.items()}
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics
