"""THE table of what each training stage trains and freezes, and the only code that sets `requires_grad`.

    stage 1  WSI-text alignment     trains  slide_encoder.*, slide_head.*, text_head.*, logit_scale
                                     freezes text_encoder.*
    stage 2  feature alignment      trains  projector.*
                                     freezes slide_encoder.*, language_model.*
    stage 3  instruction tuning     trains  projector.* (train.projector_lr), LoRA on every Linear of
                                             language_model except lm_head (train.learning_rate)
                                     freezes slide_encoder.*, language_model.* (the base weights)

Parameter names are matched as in the unwrapped model (a peft wrapper's `base_model.model.` prefix is
dropped). `apply_stage` gives every parameter exactly its table entry: trained patterns first, then
frozen ones; a parameter matching neither is an error, so a new module can never train (or freeze)
by accident. Whatever peft or anything else did to `requires_grad` before is overwritten here.
Each trained group names the config setting that holds its learning rate (`optimizer_groups`).

    groups = apply_stage(model, STAGES[3])        # {"projector": [...names], "LoRA": [...]}
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass

from torch import nn

from training.errors import TrainingError

PEFT_PREFIX = "base_model.model."


@dataclass(frozen=True)
class TrainedGroup:
    name: str                      # shown in logs and the model card
    patterns: tuple[str, ...]      # fnmatch patterns over parameter names
    lr_setting: str                # RunConfig.learning_rate_for(...): "learning_rate" | "projector_lr"


@dataclass(frozen=True)
class StageSpec:
    number: int
    name: str                      # machine name (manifest, model card tags)
    title: str
    model_kind: str                # "aligner" (slide encoder + text encoder) | "wsi_llava"
    data_kind: str                 # "reports" (slide + report text) | "instructions" (WSI-Bench conversations)
    trains: tuple[TrainedGroup, ...]
    freezes: tuple[str, ...]
    lora: bool                     # LoRA adapters are added to the language model before the table applies
    carries_over: tuple[str, ...]  # module prefixes a later stage takes from this stage's checkpoint (init_from)

    @property
    def trained_modules(self) -> list[str]:
        return [group.name for group in self.trains]


_LORA = ("language_model.*.lora_A.*", "language_model.*.lora_B.*")

STAGES: dict[int, StageSpec] = {
    1: StageSpec(1, "wsi_text_alignment", "WSI-text alignment", "aligner", "reports",
                 trains=(TrainedGroup("slide encoder", ("slide_encoder.*",), "learning_rate"),
                         TrainedGroup("alignment heads", ("slide_head.*", "text_head.*", "logit_scale"),
                                      "learning_rate")),
                 freezes=("text_encoder.*",), lora=False, carries_over=("slide_encoder.",)),
    2: StageSpec(2, "feature_alignment", "Feature-space alignment", "wsi_llava", "reports",
                 trains=(TrainedGroup("projector", ("projector.*",), "learning_rate"),),
                 freezes=("slide_encoder.*", "language_model.*"), lora=False, carries_over=("projector.",)),
    3: StageSpec(3, "instruction_tuning", "Task instruction tuning", "wsi_llava", "instructions",
                 trains=(TrainedGroup("projector", ("projector.*",), "projector_lr"),
                         TrainedGroup("LoRA", _LORA, "learning_rate")),
                 freezes=("slide_encoder.*", "language_model.*"), lora=True, carries_over=()),
}


def canonical_name(name: str) -> str:
    """A parameter name as in the unwrapped model (drops peft's `base_model.model.` prefix)."""
    return name.removeprefix(PEFT_PREFIX)


def classify(name: str, spec: StageSpec) -> str | None:
    """The trained group `name` belongs to, None if frozen; TrainingError if the table has no entry."""
    name = canonical_name(name)
    for group in spec.trains:
        if any(fnmatch.fnmatchcase(name, pattern) for pattern in group.patterns):
            return group.name
    if any(fnmatch.fnmatchcase(name, pattern) for pattern in spec.freezes):
        return None
    raise TrainingError(f"parameter {name!r} is in no entry of stage {spec.number}'s table "
                        f"(training/stages.py: trains {[g.patterns for g in spec.trains]}, freezes "
                        f"{list(spec.freezes)}); add it there.")


def trained_parameter_names(model: nn.Module, spec: StageSpec) -> dict[str, list[str]]:
    """{group name: canonical parameter names} of what `spec` trains in `model` (nothing is changed)."""
    groups: dict[str, list[str]] = {group.name: [] for group in spec.trains}
    for name, _ in model.named_parameters():
        group = classify(name, spec)
        if group is not None:
            groups[group].append(canonical_name(name))
    empty = [name for name, names in groups.items() if not names]
    if empty:
        raise TrainingError(f"stage {spec.number} should train {empty} but the model has no such parameters "
                            f"(is it the right model for stage {spec.number}: {spec.model_kind}?).")
    return groups


def apply_stage(model: nn.Module, spec: StageSpec) -> dict[str, list[str]]:
    """Set `requires_grad` of every parameter from the table; returns the trained groups' names."""
    groups = trained_parameter_names(model, spec)
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(classify(name, spec) is not None)
    return groups


def optimizer_groups(model: nn.Module, spec: StageSpec, learning_rate_for, weight_decay: float) -> list[dict]:
    """AdamW parameter groups: one per trained group (its own lr), split into decayed / not decayed.

    Biases, norms and scalars (ndim < 2) are not decayed. `learning_rate_for(setting)` maps a group's
    `lr_setting` to a value (RunConfig.learning_rate_for).
    """
    by_group: dict[str, dict[bool, list]] = {group.name: {True: [], False: []} for group in spec.trains}
    for name, parameter in model.named_parameters():
        group = classify(name, spec)
        if group is not None and parameter.requires_grad:
            by_group[group][parameter.ndim >= 2].append(parameter)
    result = []
    for group in spec.trains:
        lr = learning_rate_for(group.lr_setting)
        for decayed, params in by_group[group.name].items():
            if params:
                result.append({"params": params, "lr": lr, "weight_decay": weight_decay if decayed else 0.0,
                               "group_name": f"{group.name}{'' if decayed else ' (no decay)'}"})
    return result


def lora_target_regex(model: nn.Module) -> str:
    """A peft `target_modules` regex for every Linear of `model.language_model` except lm_head.

    Linear subclasses (bitsandbytes' Linear4bit) count. Matched by their last name component, only
    under `language_model.` (the slide encoder's q_proj/k_proj... stay untouched).
    """
    leaves = sorted({name.rsplit(".", 1)[-1] for name, module in model.language_model.named_modules()
                     if isinstance(module, nn.Linear) and name != "lm_head"})
    if not leaves:
        raise TrainingError("the language model has no Linear layers to put LoRA on.")
    return rf"language_model\..*\.({'|'.join(re.escape(leaf) for leaf in leaves)})"


def check_lora_coverage(model: nn.Module) -> int:
    """Every Linear of the language model except lm_head carries LoRA; returns how many do."""
    from peft.tuners.lora import LoraLayer

    language_model = model.language_model
    wrapped = {name for name, module in language_model.named_modules() if isinstance(module, LoraLayer)}
    linears = {name for name, module in language_model.named_modules()     # Linear layers outside LoRA wrappers
               if isinstance(module, nn.Linear) and name != "lm_head"
               and not any(name.startswith(w + ".") for w in wrapped)}
    if "lm_head" in wrapped or linears - wrapped:
        raise TrainingError(f"LoRA placement is wrong: unwrapped Linear layers {sorted(linears - wrapped)[:5]}, "
                            f"lm_head wrapped: {'lm_head' in wrapped}.")
    return len(wrapped)
