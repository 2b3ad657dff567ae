"""Training checkpoints on disk: only what was trained, plus the manifest that rebuilds the rest.

A checkpoint folder (each `checkpoint-N` the Trainer writes, and the run's output folder) holds:

    training_manifest.json        format, stage, how to rebuild (base model id + revision, LoRA settings,
                                  text encoder), what trained, data, hyperparameters, metrics
    trained_weights.safetensors   exactly the trained parameters, by name (LoRA A/B, projector, ...)
    inherited_weights.safetensors modules carried over from earlier stages (`model.init_from`) that this
                                  stage kept frozen (absent when there are none)
    run_config.yaml               the resolved training config
    README.md                     the generated model card (final output folder)

The frozen base is never copied: `training.model_setup.rebuild` loads it from its id and revision.
Files are written under temporary names and renamed. `load_tensors_into` is strict: every tensor must
name an existing parameter of the same shape.

    folder = fetch_checkpoint("my-org/wsi-llava-stage3")      # a local folder or a Hub model repo
    manifest = read_manifest(folder)
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from common.atomic import atomic_path, atomic_write_json, atomic_write_text
from common.hub import hub_snapshot, looks_like_hub_id
from training.errors import TrainingError
from training.stages import canonical_name

FORMAT = "wsi-llava-training-checkpoint"
FORMAT_VERSION = 1
MANIFEST = "training_manifest.json"
TRAINED_WEIGHTS = "trained_weights.safetensors"
INHERITED_WEIGHTS = "inherited_weights.safetensors"
RUN_CONFIG = "run_config.yaml"
MODEL_CARD = "README.md"
HUB_PATTERNS = [MANIFEST, TRAINED_WEIGHTS, INHERITED_WEIGHTS, RUN_CONFIG, MODEL_CARD]


def write_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    from safetensors.torch import save_file

    contiguous = {name: tensor.detach().to("cpu").contiguous() for name, tensor in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(contiguous, str(tmp), metadata={"format": "pt"})


def save_checkpoint(folder: str | Path, manifest: dict, trained: dict[str, torch.Tensor],
                    inherited: dict[str, torch.Tensor], run_config_yaml: str) -> Path:
    """Write a checkpoint folder; the manifest goes last, so a folder with a manifest is complete."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_tensors(folder / TRAINED_WEIGHTS, trained)
    if inherited:
        write_tensors(folder / INHERITED_WEIGHTS, inherited)
    atomic_write_text(folder / RUN_CONFIG, run_config_yaml)
    atomic_write_json(folder / MANIFEST, {"format": FORMAT, "format_version": FORMAT_VERSION} | manifest,
                      indent=2, default=str)
    return folder


def trained_tensors(model: torch.nn.Module, names: set[str],
                    state_dict: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """The trained parameters by canonical name, from `state_dict` (DeepSpeed's gathered one) or the model."""
    if state_dict is not None:
        found = {canonical_name(k): v for k, v in state_dict.items() if canonical_name(k) in names}
    else:
        found = {canonical_name(k): p for k, p in model.named_parameters() if canonical_name(k) in names}
    missing = names - set(found)
    if missing:
        raise TrainingError(f"cannot save the checkpoint: {len(missing)} trained parameters are missing from the "
                            f"state (e.g. {sorted(missing)[:3]}).")
    return {name: found[name].detach().clone() for name in sorted(found)}


def is_checkpoint(folder: str | Path) -> bool:
    return (Path(folder) / MANIFEST).is_file()


def read_manifest(folder: str | Path) -> dict:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise TrainingError(f"{folder}: not a training checkpoint (no {MANIFEST}); point at the output folder of "
                            "`wsi-llava train` or one of its checkpoint-N folders.")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise TrainingError(f"{path}: unreadable JSON ({exc.msg}); the checkpoint is damaged.") from exc
    if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
        raise TrainingError(f"{path}: format {manifest.get('format')!r} v{manifest.get('format_version')} is not "
                            f"{FORMAT!r} v{FORMAT_VERSION}.")
    return manifest


def read_tensors(folder: str | Path, filename: str, required: bool = True) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    path = Path(folder) / filename
    if not path.is_file():
        if required:
            raise TrainingError(f"{folder}: {filename} is missing; the checkpoint is incomplete.")
        return {}
    return load_file(str(path), device="cpu")


def load_tensors_into(model: torch.nn.Module, tensors: dict[str, torch.Tensor], where: str,
                      expected: set[str] | None = None) -> None:
    """Copy `tensors` into the parameters of the same canonical name; strict on names and shapes.

    With `expected`, the tensors' names must be exactly that set (e.g. every trained parameter).
    """
    params = {canonical_name(name): p for name, p in model.named_parameters()}
    unknown = sorted(set(tensors) - set(params))
    if unknown:
        raise TrainingError(f"{where}: {len(unknown)} tensors name no parameter of this model (e.g. {unknown[:3]}); "
                            "it was trained on a different base model or stage.")
    if expected is not None and set(tensors) != expected:
        missing = sorted(expected - set(tensors))
        raise TrainingError(f"{where}: lacks {len(missing)} trained parameters (e.g. {missing[:3]}).")
    mismatched = [f"{k}: {tuple(v.shape)} vs model {tuple(params[k].shape)}" for k, v in tensors.items()
                  if tuple(v.shape) != tuple(params[k].shape)]
    if mismatched:
        raise TrainingError(f"{where}: shape mismatch with this model ({'; '.join(mismatched[:3])}); it was trained "
                            "on a different base model.")
    with torch.no_grad():
        for name, tensor in tensors.items():
            params[name].copy_(tensor.to(device=params[name].device, dtype=params[name].dtype))


def fetch_checkpoint(source: str | Path, revision: str | None = None) -> Path:
    """A local checkpoint folder as is, or a Hub model repo's checkpoint files downloaded."""
    path = Path(source)
    if path.is_dir():
        read_manifest(path)
        return path
    if not looks_like_hub_id(source):
        raise TrainingError(f"{source}: neither a checkpoint folder nor a Hub model id (owner/name).")
    folder = hub_snapshot(str(source), revision=revision, allow_patterns=HUB_PATTERNS, error=TrainingError,
                          hint="or pass a local checkpoint folder")
    read_manifest(folder)
    return folder
