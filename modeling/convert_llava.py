"""`wsi-llava convert-llava SRC DST`: an original LLaVA-1.5-layout WSI-LLaVA checkpoint -> this project's format.

SRC is a local folder or a Hub id (`Lucas-yuc/wsi-llava-v1.5-7b-e1`, `Lucas-yuc/WSI-LLaVA-7b`), either a
full checkpoint or a LoRA one (adapter + `non_lora_trainables.bin`, merged onto `--base`, by default the
adapter's `base_model_name_or_path`). DST receives safetensors weights, config.json (model_type
"wsi_llava"), generation_config.json and the processor (tokenizer with `<image>`; templates vicuna_v1 for
training and llava_v1 for generation, as WSI-LLaVA used them); it is written under a temporary name and
renamed when complete.

The tokenizer is what the official loader reads (`use_fast=False`: tokenizer.model + tokenizer_config.json;
a LoRA checkpoint's comes from its base, as in `builder.py`): BOS added unless the config says otherwise,
`legacy` True when unset (transformers 4.37.2). The conversion tokenizes sample prompts with the converted
processor and with the official slow tokenizer restated over sentencepiece
(`modeling.tokenizer_parity`), before and after saving, and refuses to finish when the ids differ.
LoRA merges are stored in the checkpoint's dtype, as the release merges them (float16: fp16(W + B A s)).

The result takes WSI-LLaVA's released 576 x 1024 slide tokens as they are. It has no slide encoder
unless `--slide-encoder prov-gigapath` attaches Prov-GigaPath's (gated, HF_TOKEN; or a local
`--slide-encoder-checkpoint slide_encoder.pth`), after which it also takes tile features; its 768-d
slide tokens are then zero-padded to the projector's 1024 automatically.

    wsi-llava convert-llava Lucas-yuc/wsi-llava-v1.5-7b-e1 ./wsi-llava-7b --slide-encoder prov-gigapath
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from modeling.errors import ModelError

SLIDE_ENCODERS = ("prov-gigapath",)   # --slide-encoder choices (Prov-GigaPath is what WSI-LLaVA used)
# Hub files a conversion needs besides the model weights: configs, tokenizer, LoRA adapter, projector.
_SNAPSHOT_PATTERNS = ["*.json", "tokenizer.model", "adapter_model.*", "non_lora_trainables.bin", "mm_projector.bin"]


def fetch_folder(source: str, revision: str | None) -> Path:
    """A local folder as is, or the Hub repo's checkpoint files downloaded (errors say what to do)."""
    path = Path(source)
    if path.is_dir():
        return path
    if path.exists() or source.count("/") != 1:
        raise ModelError(f"{source!r} is neither a checkpoint folder nor a Hub id (owner/name).")
    from huggingface_hub import snapshot_download

    from common.hub import hub_download

    hub_download(source, "config.json", revision=revision, error=ModelError)   # clear errors for missing/gated/private repos
    return Path(snapshot_download(source, revision=revision, allow_patterns=_snapshot_patterns(source, revision)))


def _snapshot_patterns(repo_id: str, revision: str | None) -> list[str]:
    """What to download: one copy of the weights (safetensors when the repo has them, as `load_weights`
    prefers; many repos also hold the same 13 GB as pytorch_model*.bin) and the small files."""
    from huggingface_hub import HfApi

    files = HfApi().list_repo_files(repo_id, revision=revision)
    has_safetensors = any(f.endswith(".safetensors") and not Path(f).name.startswith("adapter_") for f in files)
    return _SNAPSHOT_PATTERNS + (["*.safetensors"] if has_safetensors else ["pytorch_model*.bin"])


# Bases WSI-LLaVA-style LoRA adapters name by a training-time folder (finetune_lora.sh:
# --model_name_or_path ./LLaVA-main/llava-v1.5-7b/) -> the Hub id holding that base.
KNOWN_BASES = {"llava-v1.5-7b": "liuhaotian/llava-v1.5-7b", "llava-v1.5-13b": "liuhaotian/llava-v1.5-13b",
               "vicuna-7b-v1.5": "lmsys/vicuna-7b-v1.5", "vicuna-13b-v1.5": "lmsys/vicuna-13b-v1.5"}
WSI_LLAVA_BASE = KNOWN_BASES["llava-v1.5-7b"]


def _lora_base(src: str, src_folder: Path, base: str | None) -> str:
    """--base, else the adapter's base_model_name_or_path; a training-time folder that is not here is an
    error naming it and the --base to pass."""
    from common.hub import looks_like_hub_id
    from modeling.llava_layout import read_json

    if base:
        return base
    configured = read_json(src_folder / "adapter_config.json").get("base_model_name_or_path")
    if not configured:
        raise ModelError(f"{src} is a LoRA checkpoint without base_model_name_or_path; pass --base "
                         f"(WSI-LLaVA was trained on {WSI_LLAVA_BASE}).")
    if Path(configured).expanduser().is_dir() or looks_like_hub_id(configured):
        return configured
    name = Path(str(configured).rstrip("/")).name
    suggestion = KNOWN_BASES.get(name.lower(), WSI_LLAVA_BASE)
    known = f"{name!r} is {suggestion} on the Hub" if name.lower() in KNOWN_BASES else \
        f"WSI-LLaVA was trained on {WSI_LLAVA_BASE}; use the base named {name!r} if it differs"
    raise ModelError(f"{src}: adapter_config.json names the base model {configured!r}, a folder on the machine the "
                     f"adapter was trained on, which does not exist here. Pass the base explicitly: --base "
                     f"{suggestion} (a Hub id or a local copy; {known}).")


def _tokenizer_folder(src: Path, base: Path | None) -> Path:
    """Where the official loader reads the tokenizer: the base of a LoRA checkpoint (builder.py), else the
    checkpoint itself; the other one when that has none."""
    from modeling.llava_layout import TOKENIZER_FILES

    for folder in ((base, src) if base is not None else (src,)):
        if any((folder / name).is_file() for name in TOKENIZER_FILES[:2]):
            return folder
    raise ModelError(f"{src}: no tokenizer (tokenizer.model or tokenizer.json) here or in the base checkpoint.")


def _tokenizer_settings(folder: Path) -> dict:
    """add_bos_token / add_eos_token / legacy as the official slow LlamaTokenizer (transformers 4.37.2) reads
    tokenizer_config.json: BOS True, EOS False and legacy True when unset (transformers 5 defaults differ:
    no BOS without the key, legacy False)."""
    from modeling.llava_layout import read_json

    config_file = folder / "tokenizer_config.json"
    config = read_json(config_file) if config_file.is_file() else {}
    legacy = config.get("legacy")
    return {"add_bos_token": bool(config.get("add_bos_token", True)),
            "add_eos_token": bool(config.get("add_eos_token", False)),
            "legacy": True if legacy is None else bool(legacy)}


def load_llava_tokenizer(folder: Path, notes: list[str]):
    """The tokenizer as the official loader builds it (see `_tokenizer_settings`): from tokenizer.model when
    present (tokenizer.json is ignored, as `use_fast=False` ignores it), else from tokenizer.json."""
    from transformers import AutoTokenizer, LlamaTokenizer

    from modeling.llava_layout import TOKENIZER_FILES

    settings = _tokenizer_settings(folder)
    notes.append(f"tokenizer from {folder}: " + ", ".join(f"{k}={v}" for k, v in settings.items()))
    if not (folder / "tokenizer.model").is_file():
        notes.append(f"{folder} has no tokenizer.model: tokenizer.json used, not checked against sentencepiece")
        return AutoTokenizer.from_pretrained(str(folder), **settings)
    with tempfile.TemporaryDirectory() as staging:       # everything the slow tokenizer reads, no tokenizer.json
        for name in TOKENIZER_FILES:
            if name != "tokenizer.json" and (folder / name).is_file():
                shutil.copyfile(folder / name, Path(staging) / name)
        if (folder / "tokenizer.json").is_file():
            notes.append("tokenizer.json ignored: the official loader reads tokenizer.model (use_fast=False)")
        return LlamaTokenizer.from_pretrained(staging, **settings)


def check_tokenizer(processor, folder: Path) -> None:
    """Refuse (ModelError naming the file and the first difference) unless `processor` gives the official ids."""
    from modeling.tokenizer_parity import SlowLlamaReference, check_processor_parity

    if (folder / "tokenizer.model").is_file():
        check_processor_parity(processor, SlowLlamaReference.from_folder(folder), where=str(folder / "tokenizer.model"))


def converted_processor(tokenizer_folder: Path, notes: list[str]):
    """The processor DST gets: the official tokenizer + `<image>`, vicuna_v1 for training, llava_v1 for
    generation; refused unless it tokenizes like the official code."""
    from modeling.conversation import INFERENCE_TEMPLATE, TRAINING_TEMPLATE
    from modeling.processing_wsi_llava import WsiLlavaProcessor

    tokenizer = load_llava_tokenizer(tokenizer_folder, notes)
    WsiLlavaProcessor.add_image_token(tokenizer)
    processor = WsiLlavaProcessor(tokenizer=tokenizer, num_slide_tokens=576, conversation_template=TRAINING_TEMPLATE,
                                  generation_template=INFERENCE_TEMPLATE)
    check_tokenizer(processor, tokenizer_folder)
    return processor


def _grow_vocabulary(state: dict, vocab_size: int) -> None:
    """Add rows for new tokens: embeddings = mean of the existing rows, lm_head = 0 (never generated)."""
    import torch

    for key, fill in (("language_model.model.embed_tokens.weight", "mean"), ("language_model.lm_head.weight", "zero")):
        if key not in state:
            continue                           # reported with every other missing weight by `convert`
        weight = state[key]
        extra = vocab_size - weight.shape[0]
        if extra > 0:
            row = weight.float().mean(0, keepdim=True) if fill == "mean" else weight.new_zeros(1, weight.shape[1])
            state[key] = torch.cat([weight, row.to(weight.dtype).expand(extra, -1)])


def convert(src: str, dst: str | Path, base: str | None = None, revision: str | None = None,
            base_revision: str | None = None, slide_encoder: str | None = None,
            slide_encoder_checkpoint: str | None = None, display_name: str | None = None,
            trained: bool = True, overwrite: bool = False) -> list[str]:
    """Convert; returns notes on what was done. Raises ModelError on any problem (DST untouched)."""
    import torch

    from modeling.configuration_wsi_llava import WsiLlavaConfig
    from modeling.conversation import INFERENCE_TEMPLATE, TRAINING_TEMPLATE
    from modeling.llava_layout import (
        check_llava_config,
        llama_text_config,
        read_json,
        read_llava_checkpoint,
        to_wsi_llava_keys,
        weight_files,
    )
    from modeling.modeling_wsi_llava import WsiLlavaForConditionalGeneration

    dst = Path(dst)
    if slide_encoder_checkpoint is not None and slide_encoder is None:
        raise ModelError("--slide-encoder-checkpoint needs --slide-encoder (which encoder the file is for).")
    if dst.exists() and not overwrite:
        raise ModelError(f"{dst} already exists; choose another DST or pass --overwrite.")
    src_folder = fetch_folder(src, revision)
    base_folder = None
    if (src_folder / "adapter_config.json").is_file():
        base_folder = fetch_folder(_lora_base(src, src_folder, base), base_revision)
    check_llava_config(read_json(src_folder / "config.json"), str(src_folder))
    weight_files(base_folder or src_folder)               # layout errors first, before the tokenizer's
    tokenizer_notes: list[str] = []
    tokenizer_folder = _tokenizer_folder(src_folder, base_folder)
    processor = converted_processor(tokenizer_folder, tokenizer_notes)     # checked before reading the weights
    image_token_index = processor.image_token_id

    llava_config, llava_state, notes = read_llava_checkpoint(src_folder, base_folder)
    notes += tokenizer_notes
    if llava_config.get("mm_use_im_patch_token", True):
        notes.append("config.json has mm_use_im_patch_token true or unset: the official loader would add an "
                     "<im_patch> token with a randomly initialised row; not reproduced")
    state = to_wsi_llava_keys(llava_state, src)
    text_config = llama_text_config(llava_config)
    text_config["vocab_size"] = max(int(text_config["vocab_size"]), image_token_index + 1)
    _grow_vocabulary(state, text_config["vocab_size"])

    encoder_settings = None
    if slide_encoder is not None:
        if slide_encoder not in SLIDE_ENCODERS:
            raise ModelError(f"--slide-encoder {slide_encoder!r}: known: {SLIDE_ENCODERS}.")
        from modeling.slide_encoder_weights import load_prov_gigapath_slide_encoder

        encoder = load_prov_gigapath_slide_encoder(checkpoint=slide_encoder_checkpoint)
        encoder_settings = encoder.config.to_dict()
        state.update({f"slide_encoder.{k}": v for k, v in encoder.state_dict().items()})
        notes.append(f"attached the {slide_encoder} slide encoder ({encoder.weights_source})")

    source_dtype = llava_config.get("torch_dtype") or llava_config.get("dtype") or "float16"
    config = WsiLlavaConfig(
        text_config=text_config, slide_encoder_config=encoder_settings,
        num_slide_tokens=576, slide_token_dim=int(llava_config["mm_hidden_size"]),
        projector_type=llava_config.get("mm_projector_type", "linear"), image_token_index=image_token_index,
        language_model_source=src, language_model_revision=revision,
        slide_encoder_source=("prov-gigapath/prov-gigapath" if slide_encoder else None),
        is_trained=trained, display_name=display_name or src, dtype=source_dtype)
    with torch.device("meta"):                    # no random init of billions of weights; assign the real ones
        model = WsiLlavaForConditionalGeneration(config)
    expected = set(model.state_dict())
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise ModelError(f"{src}: weights do not fit the converted architecture; missing {missing[:8]}, "
                         f"unexpected {unexpected[:8]}.")
    model.load_state_dict(state, strict=True, assign=True)
    _write(model, processor, dst, tokenizer_folder)
    notes.append(f"wrote {dst} (model_type wsi_llava, vocab {text_config['vocab_size']}, `<image>` id "
                 f"{image_token_index}, slide tokens 576 x {config.slide_token_dim}, templates "
                 f"{TRAINING_TEMPLATE} (training) / {INFERENCE_TEMPLATE} (generation), "
                 f"{'with' if slide_encoder else 'no'} slide encoder)")
    return notes


def _write(model, processor, dst: Path, tokenizer_folder: Path) -> None:
    """Save under a temporary name, check the saved processor's ids once more, then rename to `dst`."""
    from modeling.processing_wsi_llava import WsiLlavaProcessor

    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.partial-", dir=dst.parent))
    try:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        check_tokenizer(WsiLlavaProcessor.from_pretrained(tmp), tokenizer_folder)   # what DST will give
        if dst.exists():
            shutil.rmtree(dst)
        tmp.rename(dst)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="wsi-llava convert-llava", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("src", help="LLaVA-layout checkpoint: a folder or a Hub id")
    parser.add_argument("dst", help="output folder (must not exist unless --overwrite)")
    parser.add_argument("--base", help="base checkpoint of a LoRA SRC (default: the adapter's base_model_name_or_path; "
                        "WSI-LLaVA's is liuhaotian/llava-v1.5-7b)")
    parser.add_argument("--revision", help="Hub revision of SRC")
    parser.add_argument("--base-revision", help="Hub revision of --base")
    parser.add_argument("--slide-encoder", choices=SLIDE_ENCODERS, help="attach this slide encoder's weights")
    parser.add_argument("--slide-encoder-checkpoint", help="local slide_encoder.pth instead of downloading it")
    parser.add_argument("--display-name", help="name shown for the model (default: SRC)")
    parser.add_argument("--untrained", action="store_true", help="mark the weights as untrained (test checkpoints)")
    parser.add_argument("--overwrite", action="store_true", help="replace DST if it exists")
    args = parser.parse_args(argv)
    try:
        notes = convert(args.src, args.dst, base=args.base, revision=args.revision, base_revision=args.base_revision,
                        slide_encoder=args.slide_encoder, slide_encoder_checkpoint=args.slide_encoder_checkpoint,
                        display_name=args.display_name, trained=not args.untrained, overwrite=args.overwrite)
    except ModelError as exc:
        print(f"wsi-llava convert-llava: error: {exc}", file=sys.stderr)
        return 1
    for note in notes:
        print(note)
    return 0
