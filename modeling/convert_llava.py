"""`wsi-llava convert-llava SRC DST`: an original LLaVA-1.5-layout WSI-LLaVA checkpoint -> this project's format.

SRC is a local folder or a Hub id (`Lucas-yuc/wsi-llava-v1.5-7b-e1`, `Lucas-yuc/WSI-LLaVA-7b`), either a
full checkpoint or a LoRA one (adapter + `non_lora_trainables.bin`, merged onto `--base`, by default the
adapter's `base_model_name_or_path`). DST receives safetensors weights, config.json (model_type
"wsi_llava"), generation_config.json and the processor (tokenizer with `<image>` + Vicuna v1 template);
it is written under a temporary name and renamed when complete.

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


def _tokenizer_folder(src: Path, base: Path | None) -> Path:
    from modeling.llava_layout import TOKENIZER_FILES

    for folder in (src, base):
        if folder is not None and any((folder / name).is_file() for name in TOKENIZER_FILES[:2]):
            return folder
    raise ModelError(f"{src}: no tokenizer (tokenizer.model or tokenizer.json) here or in the base checkpoint.")


def _llava_tokenizer_legacy(folder: Path) -> bool:
    """The LLaMA tokenizer's `legacy` as LLaVA's transformers 4.x read it: the tokenizer_config.json value,
    True when unset (transformers 5 defaults to False, which tokenizes text after "</s>" differently)."""
    from modeling.llava_layout import read_json

    config_file = folder / "tokenizer_config.json"
    value = read_json(config_file).get("legacy") if config_file.is_file() else None
    return True if value is None else bool(value)


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
    from transformers import AutoTokenizer

    from modeling.configuration_wsi_llava import WsiLlavaConfig
    from modeling.llava_layout import (
        llama_text_config,
        read_json,
        read_llava_checkpoint,
        to_wsi_llava_keys,
    )
    from modeling.modeling_wsi_llava import WsiLlavaForConditionalGeneration
    from modeling.processing_wsi_llava import WsiLlavaProcessor

    dst = Path(dst)
    if slide_encoder_checkpoint is not None and slide_encoder is None:
        raise ModelError("--slide-encoder-checkpoint needs --slide-encoder (which encoder the file is for).")
    if dst.exists() and not overwrite:
        raise ModelError(f"{dst} already exists; choose another DST or pass --overwrite.")
    src_folder = fetch_folder(src, revision)
    base_folder = None
    if (src_folder / "adapter_config.json").is_file():
        base = base or read_json(src_folder / "adapter_config.json").get("base_model_name_or_path")
        if not base:
            raise ModelError(f"{src} is a LoRA checkpoint without base_model_name_or_path; pass --base.")
        base_folder = fetch_folder(base, base_revision)
    llava_config, llava_state, notes = read_llava_checkpoint(src_folder, base_folder)
    state = to_wsi_llava_keys(llava_state, src)

    tokenizer_folder = _tokenizer_folder(src_folder, base_folder)
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_folder))
    legacy = _llava_tokenizer_legacy(tokenizer_folder)
    if isinstance(getattr(tokenizer, "legacy", None), bool) and tokenizer.legacy != legacy:
        tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_folder), legacy=legacy)
        notes.append(f"tokenizer: legacy={legacy} (unset in {tokenizer_folder.name}/tokenizer_config.json: "
                     "transformers 4.x, which LLaVA ran, treats that as legacy=True)")
    image_token_index = WsiLlavaProcessor.add_image_token(tokenizer)
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

    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.partial-", dir=dst.parent))
    try:
        model.save_pretrained(tmp)
        WsiLlavaProcessor(tokenizer=tokenizer, num_slide_tokens=config.num_slide_tokens).save_pretrained(tmp)
        if dst.exists():
            shutil.rmtree(dst)
        tmp.rename(dst)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    notes.append(f"wrote {dst} (model_type wsi_llava, vocab {text_config['vocab_size']}, `<image>` id "
                 f"{image_token_index}, slide tokens 576 x {config.slide_token_dim}, "
                 f"{'with' if slide_encoder else 'no'} slide encoder)")
    return notes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="wsi-llava convert-llava", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("src", help="LLaVA-layout checkpoint: a folder or a Hub id")
    parser.add_argument("dst", help="output folder (must not exist unless --overwrite)")
    parser.add_argument("--base", help="base checkpoint of a LoRA SRC (default: the adapter's base_model_name_or_path)")
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
