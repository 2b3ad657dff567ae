"""Loading Prov-GigaPath's published slide-encoder weights into `LongNetSlideEncoder`, strictly.

Sources: a local `slide_encoder.pth` (Prov-GigaPath's layout `{"model": state_dict}`, or a bare state
dict), a `.safetensors` file, or the gated Hub repo `prov-gigapath/prov-gigapath` (file
`slide_encoder.pth`; needs HF_TOKEN of an account that accepted the model's terms). Every key and shape
must match (`strict=True`); anything else raises `ModelError` naming the file, the keys and the fix.
There is no fallback to random weights. The model is built on the meta device and the checkpoint
tensors are assigned, so no random initialisation happens at all.

Try it: `python -c "from modeling.slide_encoder_weights import load_prov_gigapath_slide_encoder as f;
print(f('slide_encoder.pth').weights_source)"`
"""

from __future__ import annotations

import argparse
import pickle
from pathlib import Path

import torch

from modeling.errors import ModelError
from common.hub import hub_download
from modeling.slide_encoder import LongNetSlideEncoder, SlideEncoderConfig

PROV_GIGAPATH_REPO_ID = "prov-gigapath/prov-gigapath"
PROV_GIGAPATH_SLIDE_ENCODER_FILE = "slide_encoder.pth"
_REPO_URL = f"https://huggingface.co/{PROV_GIGAPATH_REPO_ID}"


def read_slide_encoder_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict in a .pth (`{"model": sd}` or a bare sd) or .safetensors file, on CPU."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"slide encoder checkpoint {path} does not exist; pass the path of Prov-GigaPath's "
                         f"{PROV_GIGAPATH_SLIDE_ENCODER_FILE} (from {_REPO_URL}) or checkpoint=None to download it")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            payload = load_file(str(path), device="cpu")
        else:  # never unpickle arbitrary objects; training scripts' argparse args are harmless
            with torch.serialization.safe_globals([argparse.Namespace]):
                payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Unsupported global" not in str(exc):
            raise ModelError(f"cannot read slide encoder checkpoint {path}: it is not a PyTorch checkpoint "
                             "or it is truncated. Re-download it") from exc
        reason = next(line.strip() for line in str(exc).splitlines() if "Unsupported global" in line)
        raise ModelError(
            f"slide encoder checkpoint {path} holds pickled Python objects besides tensors, which are not "
            f"loaded for safety ({reason}). If you trust the file, convert its weights once: python -c "
            f"\"import torch, safetensors.torch as st; st.save_file(torch.load('{path}', weights_only=False)"
            f"['model'], 'slide_encoder.safetensors')\" and pass the .safetensors file") from exc
    except Exception as exc:  # any other reader failure: an unreadable file
        raise ModelError(f"cannot read slide encoder checkpoint {path}: {exc}. Re-download it or check "
                         "that it is a PyTorch .pth or .safetensors file") from exc
    if isinstance(payload, dict) and isinstance(payload.get("model"), dict):
        payload = payload["model"]
    if not isinstance(payload, dict) or not all(isinstance(v, torch.Tensor) for v in payload.values()):
        keys = list(payload)[:8] if isinstance(payload, dict) else type(payload).__name__
        raise ModelError(f"slide encoder checkpoint {path} holds no state dict (expected {{'model': "
                         f"state_dict}} as in Prov-GigaPath's {PROV_GIGAPATH_SLIDE_ENCODER_FILE}); found {keys}")
    return payload


def check_slide_encoder_state_dict(model: LongNetSlideEncoder, state_dict: dict, source: str) -> None:
    """Raise ModelError unless `state_dict` has exactly the model's keys and shapes."""
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    mismatched = [f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {expected[k]}"
                  for k in expected if k in state_dict and tuple(state_dict[k].shape) != expected[k]]
    if not (missing or unexpected or mismatched):
        return
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys (e.g. {missing[:3]})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[:3]})")
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatches (e.g. {mismatched[:3]})")
    cfg = model.config
    raise ModelError(
        f"slide encoder checkpoint {source} does not match the model (in_dim={cfg.in_dim}, embed_dim="
        f"{cfg.embed_dim}, depth={cfg.depth}, mlp_ratio={cfg.mlp_ratio}): {'; '.join(problems)}. Use "
        f"Prov-GigaPath's {PROV_GIGAPATH_SLIDE_ENCODER_FILE} (gigapath_slide_enc12l768d) or a SlideEncoderConfig "
        "that matches the checkpoint.")


def download_prov_gigapath_slide_encoder(revision: str | None = None) -> Path:
    """Fetch `slide_encoder.pth` from the gated Hub repo (cached); ModelError with the fix on failure."""
    return Path(hub_download(PROV_GIGAPATH_REPO_ID, PROV_GIGAPATH_SLIDE_ENCODER_FILE, revision=revision,
                             hint=f"or download {PROV_GIGAPATH_SLIDE_ENCODER_FILE} elsewhere and pass "
                                  "checkpoint=PATH", error=ModelError))


def load_slide_encoder_weights(model: LongNetSlideEncoder, state_dict: dict, source: str) -> LongNetSlideEncoder:
    """Strictly load `state_dict` into `model` (assigning the tensors, so a meta-device model works)."""
    check_slide_encoder_state_dict(model, state_dict, source)
    model.load_state_dict(state_dict, strict=True, assign=True)
    model.weights_source = source
    return model


def load_prov_gigapath_slide_encoder(checkpoint: str | Path | None = None, revision: str | None = None, *,
                                     config: SlideEncoderConfig | None = None) -> LongNetSlideEncoder:
    """Prov-GigaPath's slide encoder with its published weights, in eval mode on CPU.

    `checkpoint`: a local .pth/.safetensors file; None downloads `slide_encoder.pth` from the Hub at
    `revision`. `config` defaults to `gigapath_slide_enc12l768d`; pass one to load a matching checkpoint
    of another size (or set runtime options such as attention_backend).
    """
    if checkpoint is not None and revision is not None:
        raise ModelError(f"revision={revision!r} only applies to Hub downloads; drop it when passing "
                         f"checkpoint={checkpoint}")
    path = Path(checkpoint) if checkpoint is not None else download_prov_gigapath_slide_encoder(revision)
    state_dict = read_slide_encoder_state_dict(path)
    with torch.device("meta"):
        model = LongNetSlideEncoder(config or SlideEncoderConfig())
    return load_slide_encoder_weights(model, state_dict, str(path)).eval()
