"""Reading a training config: YAML file + `--section.key value` overrides -> a validated `RunConfig`.

Values are converted to each field's declared type (so YAML's `2e-5`, which PyYAML reads as a
string, is a float here); unknown sections/keys, wrong types and invalid values raise `ConfigError`
naming the file and the key (with the closest known key). `check_environment` then checks what the
file system must hold (data paths, features root, DeepSpeed config, output folder state), so every
mistake surfaces before a model is built.

    config = load_config("training/configs/tiny.yaml", stage=2,
                         overrides=parse_overrides(["--train.max_steps", "5"]))
    check_environment(config)
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from common.hub import looks_like_hub_id
from training.config import SECTIONS, ConfigError, RunConfig

_TYPE_HINTS = {name: typing.get_type_hints(cls) for name, cls in SECTIONS.items()}
_NULLS = ("null", "none", "~", "")
_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def _closest(word: str, known: Sequence[str]) -> str:
    match = difflib.get_close_matches(word, list(known), n=1)
    return f" Did you mean {match[0]!r}?" if match else ""


def _type_name(annotation) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def _flow_list(text: str, where: str) -> list:
    """A YAML flow sequence from the command line: "[1, 5]", "[runs/stage1, runs/stage2]"."""
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: {text!r} is not a list like [a, b] ({exc}).") from exc


def coerce(value: Any, annotation, where: str) -> Any:
    """`value` (from YAML or a command-line string) as `annotation`; ConfigError naming `where`."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        is_null = value is None or (isinstance(value, str) and value.strip().lower() in _NULLS)
        if is_null and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return coerce(value, inner[0], where)
    if origin is list:
        if isinstance(value, str):
            text = value.strip()
            value = _flow_list(text, where) if text.startswith("[") else [v.strip() for v in text.split(",")
                                                                         if v.strip()]
        if not isinstance(value, list):
            raise ConfigError(f"{where}: must be a list, got {value!r}.")
        return [coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)]
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
            return value.strip().lower() in _TRUE
        raise ConfigError(f"{where}: must be true or false, got {value!r}.")
    if annotation in (int, float):
        if isinstance(value, bool):
            raise ConfigError(f"{where}: must be a number, got {value!r}.")
        try:
            number = float(value) if annotation is float else int(str(value).strip())
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: must be {'a number' if annotation is float else 'an integer'}, "
                              f"got {value!r}.") from None
        return number
    if annotation is str:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: must be a string, got {value!r} (YAML reads bare yes/no/on/off as "
                              "booleans: quote it, e.g. \"no\").")
        if isinstance(value, (dict, list)) or value is None:
            raise ConfigError(f"{where}: must be a string, got {value!r}.")
        return str(value)
    raise AssertionError(f"unsupported config field type {_type_name(annotation)} at {where}")


def _read_yaml(path: Path) -> dict:
    import yaml

    if not path.is_file():
        raise ConfigError(f"{path}: config file not found (the shipped ones are in training/configs/).")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc}).") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections, got {type(data).__name__}.")
    return data


def parse_overrides(args: Sequence[str]) -> list[tuple[str, str]]:
    """["--train.max_steps", "5", "--data.tasks=grading,staging"] -> [("train.max_steps", "5"), ...]."""
    pairs: list[tuple[str, str]] = []
    index = 0
    while index < len(args):
        arg = args[index]
        if not arg.startswith("--") or "." not in arg:
            raise ConfigError(f"unexpected argument {arg!r}; overrides look like --section.key VALUE "
                              f"(sections: {', '.join(SECTIONS)}).")
        if "=" in arg:
            key, value = arg[2:].split("=", 1)
        else:
            if index + 1 >= len(args):
                raise ConfigError(f"override {arg} has no value.")
            key, value = arg[2:], args[index + 1]
            index += 1
        pairs.append((key, value))
        index += 1
    return pairs


def _apply_overrides(data: dict, overrides: Sequence[tuple[str, str]]) -> None:
    for key, value in overrides:
        section, _, name = key.partition(".")
        if section not in SECTIONS or not name or "." in name:
            raise ConfigError(f"override --{key}: expected --section.key with a section among "
                              f"{list(SECTIONS)}.{_closest(section, SECTIONS)}")
        if data.get(section) is None:
            data[section] = {}
        data[section][name] = value


def _build_section(name: str, raw: Any, source: str):
    cls = SECTIONS[name]
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: section {name!r} must be a mapping of keys, got {type(raw).__name__}.")
    hints = _TYPE_HINTS[name]
    values = {}
    for key, value in raw.items():
        if key not in hints:
            raise ConfigError(f"{source}: unknown key '{name}.{key}'.{_closest(str(key), hints)} Known keys in "
                              f"'{name}': {', '.join(hints)}.")
        values[key] = coerce(value, hints[key], f"{source}: {name}.{key}")
    try:
        return cls(**values)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from exc


def load_config(path: str | Path, stage: int | None = None,
                overrides: Sequence[tuple[str, str]] = ()) -> RunConfig:
    """The YAML file at `path` with `overrides` applied, as a validated RunConfig.

    `stage` (from `--stage`) must agree with the file's `stage:` when both are given.
    """
    path = Path(path)
    source = str(path)
    data = _read_yaml(path)
    unknown = [key for key in data if key != "stage" and key not in SECTIONS]
    if unknown:
        raise ConfigError(f"{source}: unknown section {unknown[0]!r}.{_closest(str(unknown[0]), SECTIONS)} Known "
                          f"top-level keys: stage, {', '.join(SECTIONS)}.")
    file_stage = data.get("stage")
    if file_stage is not None:
        file_stage = coerce(file_stage, int, f"{source}: stage")
    if stage is not None and file_stage is not None and stage != file_stage:
        raise ConfigError(f"{source}: says stage {file_stage} but --stage {stage} was given; use the config "
                          f"of stage {stage} (training/configs/stage{stage}.yaml) or fix one of them.")
    chosen = stage if stage is not None else file_stage
    if chosen is None:
        raise ConfigError(f"{source}: no stage; pass --stage 1|2|3 or add `stage:` to the file.")
    sections = {name: data.get(name) for name in SECTIONS}
    _apply_overrides(sections, overrides)
    built = {name: _build_section(name, raw, source) for name, raw in sections.items()}
    try:
        return RunConfig(stage=chosen, source=source, **built)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from exc


def config_to_dict(config: RunConfig) -> dict:
    """The resolved config as plain data (saved beside checkpoints, shown in the model card)."""
    return {"stage": config.stage} | {name: dataclasses.asdict(getattr(config, name)) for name in SECTIONS}


def _check_data_path(config: RunConfig, key: str, value: str | None, hub_allowed: bool) -> None:
    if value is None or Path(value).exists():
        return
    hint = " (and it is not a Hub dataset id owner/name)" if hub_allowed else ""
    if not (hub_allowed and looks_like_hub_id(value)):
        raise ConfigError(f"{config.source}: {key}: {value} does not exist{hint}.")


def check_environment(config: RunConfig) -> None:
    """Check paths and the output folder before anything is built; ConfigError naming the key."""
    data = config.data
    if config.spec.data_kind == "instructions" or not data.reports_file:
        _check_data_path(config, "data.train", data.train, hub_allowed=True)
    _check_data_path(config, "data.val", data.val, hub_allowed=True)
    if config.spec.data_kind == "reports":
        _check_data_path(config, "data.reports_file", data.reports_file, hub_allowed=False)
    if not Path(data.features_root).is_dir():
        raise ConfigError(f"{config.source}: data.features_root: {data.features_root} is not a folder (it must hold "
                          "the slide-token .pt or features .h5 files named as the items' `image`).")
    for source in config.model.init_from:
        _check_data_path(config, "model.init_from", source, hub_allowed=True)
    _check_deepspeed(config)
    _check_output_dir(config)


def _check_deepspeed(config: RunConfig) -> None:
    path = config.train.deepspeed
    if path is None:
        return
    where = f"{config.source}: train.deepspeed"
    if not Path(path).is_file():
        raise ConfigError(f"{where}: {path} does not exist (shipped: training/configs/zero2.json, zero3.json).")
    try:
        stage = json.loads(Path(path).read_text())["zero_optimization"]["stage"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ConfigError(f"{where}: {path} is not a DeepSpeed config with zero_optimization.stage ({exc}).") from exc
    if config.model.load_4bit and stage == 3:
        raise ConfigError(f"{where}: QLoRA (model.load_4bit) cannot be sharded with ZeRO-3; use zero2.json.")
    import importlib.util

    if importlib.util.find_spec("deepspeed") is None:
        raise ConfigError(f"{where}: the deepspeed package is not installed (`pip install deepspeed` on the GPU "
                          "machines, then start with `accelerate launch` or `torchrun`); drop train.deepspeed for a "
                          "single-process run.")


def _check_output_dir(config: RunConfig) -> None:
    out = Path(config.train.output_dir)
    resume = config.train.resume_from_checkpoint
    checkpoints = sorted(out.glob("checkpoint-*")) if out.is_dir() else []
    where = f"{config.source}: train.resume_from_checkpoint"
    if resume is None:
        if checkpoints or (out / "training_manifest.json").is_file():
            held = f"{len(checkpoints)} checkpoint(s)" if checkpoints else "a finished run"
            raise ConfigError(f"{config.source}: train.output_dir {out} already holds {held}; resume with --resume "
                              "(train.resume_from_checkpoint: last) or choose another output_dir (nothing is "
                              "overwritten).")
    elif resume == "last":
        if not checkpoints:
            raise ConfigError(f"{where}: 'last' but {out} holds no checkpoint-N folder to resume from.")
    elif not (Path(resume) / "trainer_state.json").is_file():
        raise ConfigError(f"{where}: {resume} is not a checkpoint folder (no trainer_state.json).")
