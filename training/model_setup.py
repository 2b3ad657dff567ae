"""Building each stage's model: base weights, carried-over modules, LoRA, then the stage table.

    stage 1: SlideTextAligner(base checkpoint's slide encoder, text encoder, heads)
    stage 2: the base WSI-LLaVA model
    stage 3: the base WSI-LLaVA model (language model 4-bit with QLoRA) + LoRA on the language model's
             Linear layers except lm_head, wrapped in a peft model for the Trainer

The same `rebuild` description (stored in every checkpoint manifest) builds the model for training
and for loading a checkpoint back, so both are identical by construction. `model.init_from`
checkpoints contribute the modules their stage carries over (`StageSpec.carries_over`).

    stage_model = build_for_training(config)                 # what the Trainer trains
    loaded = load_checkpoint("my-org/wsi-llava-stage3")      # a trained checkpoint, ready for inference
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field

import torch
from torch import nn

from training.base_models import (
    load_base_model,
    load_base_slide_encoder,
    resolve_commit,
    training_device,
)
from training.checkpoint_io import (
    INHERITED_WEIGHTS,
    TRAINED_WEIGHTS,
    fetch_checkpoint,
    load_tensors_into,
    read_manifest,
    read_tensors,
)
from training.config import RunConfig
from training.errors import TrainingError
from training.stages import (
    STAGES,
    StageSpec,
    apply_stage,
    check_lora_coverage,
    lora_target_regex,
)


@dataclass
class StageModel:
    model: nn.Module                       # what the Trainer trains (a peft wrapper in stage 3)
    spec: StageSpec
    groups: dict[str, list[str]]           # trained group -> canonical parameter names
    rebuild: dict                          # how to rebuild the frozen rest (the manifest's "rebuild")
    processor: object | None = None        # WsiLlavaProcessor (stages 2-3)
    text_tokenizer: object | None = None   # stage 1
    inherited: dict[str, torch.Tensor] = field(default_factory=dict)
    init_from: list[dict] = field(default_factory=list)
    quantization: str | None = None

    @property
    def core(self) -> nn.Module:
        """The unwrapped model (WsiLlavaForConditionalGeneration or SlideTextAligner)."""
        return self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model

    @property
    def trained_names(self) -> set[str]:
        return {name for names in self.groups.values() for name in names}

    def parameter_counts(self) -> dict[str, int]:
        params = dict(self.core.named_parameters())
        counts = {group: sum(params[n].numel() for n in names) for group, names in self.groups.items()}
        return counts | {"total": sum(p.numel() for p in params.values())}


def rebuild_description(config: RunConfig) -> dict:
    model = config.model
    description = {"stage": config.stage, "base_model": model.base_model, "base_model_revision":
                   model.base_model_revision, "base_model_commit": resolve_commit(model.base_model,
                                                                                  model.base_model_revision),
                   "dtype": model.dtype, "load_4bit": model.load_4bit, "lora": None, "init_seed": config.train.seed}
    if config.spec.lora:
        description["lora"] = {"r": config.lora.r, "alpha": config.lora.alpha, "dropout": config.lora.dropout}
    if config.spec.model_kind == "aligner":
        a = config.alignment
        description["text_encoder"] = {"source": a.text_encoder, "revision": a.text_encoder_revision}
        description["aligner"] = {"embed_dim": a.embed_dim, "text_pooling": a.text_pooling,
                                  "init_temperature": a.init_temperature, "max_logit_scale": a.max_logit_scale}
    return description


def _base(rebuild: dict, load_4bit: bool, device: str | None) -> StageModel:
    """The stage's model before carried-over modules, LoRA and the table (processor/tokenizer attached)."""
    spec = STAGES[rebuild["stage"]]
    if spec.model_kind == "aligner":
        from training.alignment_model import SlideTextAligner, load_text_encoder

        if "slide_encoder_config" in rebuild:      # loading a checkpoint back: every encoder weight was trained
            from modeling.slide_encoder import LongNetSlideEncoder, SlideEncoderConfig

            encoder = LongNetSlideEncoder(SlideEncoderConfig.from_dict(dict(rebuild["slide_encoder_config"])))
        else:
            encoder, encoder_config = load_base_slide_encoder(rebuild["base_model"], rebuild["base_model_revision"])
            rebuild["slide_encoder_config"] = encoder_config.to_dict()
        text_encoder, tokenizer = load_text_encoder(rebuild["text_encoder"]["source"],
                                                    rebuild["text_encoder"]["revision"])
        torch.manual_seed(rebuild["init_seed"])    # the heads' initialisation is part of the run's seed
        aligner = SlideTextAligner(encoder, text_encoder, **rebuild["aligner"]).float()
        return StageModel(aligner, spec, {}, rebuild, text_tokenizer=tokenizer)
    loaded = load_base_model(rebuild["base_model"], rebuild["base_model_revision"], rebuild["dtype"], load_4bit,
                             device)
    return StageModel(loaded.model, spec, {}, rebuild, processor=loaded.processor, quantization=loaded.quantization)


def _finish(stage_model: StageModel) -> StageModel:
    """Add LoRA (stage 3), then let the stage table decide what trains."""
    spec, rebuild = stage_model.spec, stage_model.rebuild
    if spec.lora:
        from peft import LoraConfig, get_peft_model

        lora = rebuild["lora"]
        lora["target_modules"] = lora_target_regex(stage_model.model)
        torch.manual_seed(rebuild["init_seed"])    # LoRA A initialisation is part of the run's seed
        with warnings.catch_warnings():            # peft 0.21 asks transformers 5 a deprecated question
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            stage_model.model = get_peft_model(stage_model.model, LoraConfig(
                r=lora["r"], lora_alpha=lora["alpha"], lora_dropout=lora["dropout"], bias="none",
                target_modules=lora["target_modules"]))
        check_lora_coverage(stage_model.core)
    stage_model.groups = apply_stage(stage_model.model, spec)
    return stage_model


def _carry_over(stage_model: StageModel, sources: list[str]) -> None:
    """Load the modules each `model.init_from` checkpoint's stage carries over (in order)."""
    for source in sources:
        folder = fetch_checkpoint(source)
        manifest = read_manifest(folder)
        prefixes = STAGES[manifest["stage"]].carries_over
        if not prefixes:
            raise TrainingError(f"model.init_from: {source} is a stage {manifest['stage']} checkpoint, which carries "
                                "nothing over (its LoRA belongs to its own base); resume it, or merge it with "
                                "`wsi-llava train --merge` and use the merged folder as model.base_model.")
        tensors = read_tensors(folder, TRAINED_WEIGHTS) | read_tensors(folder, INHERITED_WEIGHTS, required=False)
        chosen = {name: t for name, t in tensors.items() if name.startswith(prefixes)}
        expected = {name for name, _ in stage_model.core.named_parameters() if name.startswith(prefixes)}
        if not expected:
            raise TrainingError(f"model.init_from: {source} carries {list(prefixes)} but this model has no such "
                                "module (e.g. a slide-token-only base has no slide encoder).")
        load_tensors_into(stage_model.core, chosen, f"model.init_from {source}", expected=expected)
        stage_model.inherited.update(chosen)
        stage_model.init_from.append({"source": str(source), "stage": manifest["stage"], "modules": list(prefixes),
                                      "base_model": manifest["rebuild"]["base_model"]})


def build_for_training(config: RunConfig) -> StageModel:
    stage_model = _base(rebuild_description(config), config.model.load_4bit, None)
    _carry_over(stage_model, config.model.init_from)
    _finish(stage_model)
    trained = stage_model.trained_names
    for source in stage_model.init_from:            # trained further here, or kept frozen (and stored)
        source["trained_here"] = any(name.startswith(tuple(source["modules"])) for name in trained)
    stage_model.inherited = {k: v for k, v in stage_model.inherited.items() if k not in trained}
    return stage_model


def load_checkpoint(source: str, revision: str | None = None, device: str | None = None,
                    load_4bit: bool | None = None) -> StageModel:
    """A trained checkpoint (folder or Hub id) rebuilt on its base, in eval mode, marked trained.

    The base is loaded at the commit recorded in training (when it came from the Hub) and, unless
    `load_4bit` says otherwise, quantised as in training. Stages 2-3: `stage_model.core` is a
    WsiLlavaForConditionalGeneration (LoRA layers active, not merged) with `config.is_trained = True`;
    `as_loaded_model` gives the `modeling.checkpoints.LoadedModel` that ask/evaluation/the app take.
    """
    from modeling.checkpoints import default_device

    folder = fetch_checkpoint(source, revision)
    manifest = read_manifest(folder)
    rebuild = json.loads(json.dumps(manifest["rebuild"]))      # a deep copy
    if rebuild.get("base_model_commit"):
        rebuild["base_model_revision"] = rebuild["base_model_commit"]
    load_4bit = rebuild["load_4bit"] if load_4bit is None else load_4bit
    device = device or (training_device(True) if load_4bit else default_device())
    stage_model = _base(rebuild, load_4bit, device)
    load_tensors_into(stage_model.core, read_tensors(folder, INHERITED_WEIGHTS, required=False),
                      f"{folder}/{INHERITED_WEIGHTS}")
    _finish(stage_model)
    load_tensors_into(stage_model.core, read_tensors(folder, TRAINED_WEIGHTS), f"{folder}/{TRAINED_WEIGHTS}",
                      expected=stage_model.trained_names)
    core = stage_model.core
    if stage_model.spec.model_kind == "wsi_llava":
        core.config.is_trained = True
        core.config.display_name = str(source)
    if stage_model.quantization is None:
        core.to(device)
    core.eval()
    return stage_model


def as_loaded_model(stage_model: StageModel, name: str):
    """A stage 2-3 model as `modeling.checkpoints.LoadedModel` (what ask/evaluation/the app take)."""
    from modeling.checkpoints import LoadedModel

    if stage_model.spec.model_kind != "wsi_llava":
        raise TrainingError(f"{name} is a stage {stage_model.spec.number} (slide-text alignment) checkpoint; it has "
                            "no language model to answer questions.")
    return LoadedModel(stage_model.core, stage_model.processor, name, True, stage_model.quantization)
