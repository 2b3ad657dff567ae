"""The tile-encoder registry: one entry per encoder, loaded by name with its exact preprocessing.

    encoder = load_tile_encoder("prov-gigapath")       # timm hf_hub:prov-gigapath/prov-gigapath (gated)
    encoder.model, encoder.transform, encoder.feature_dim, encoder.name, encoder.revision, encoder.trained

Entries:
- `prov-gigapath`: the Prov-GigaPath tile encoder (DINOv2 ViT-g/14), 1536-d; resize 256 bicubic,
  centre-crop 224, ImageNet mean/std; tiles of 256 px at 0.5 um/px.
- `uni`: UNI (ViT-L/16, MahmoodLab/uni, gated), 1024-d; resize 224, ImageNet mean/std.
- `random-tiny`, `random-vit-s`: UNTRAINED, randomly initialised ViTs (fixed seed) for offline tests
  and throughput benchmarks. Their names, `trained=False` and the `weights` note stored in every
  feature file say so. They are never a fallback: a missing or gated checkpoint is a `TileEncoderError`
  that says how to get access (accept the terms on the model page, then set HF_TOKEN).

A new encoder (CONCH, Virchow, H-optimus, ...) is one `TileEncoderSpec` in `TILE_ENCODERS` with a
builder that returns the model and the revision its weights came from.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from modeling.errors import ModelError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class TileEncoderError(ModelError):
    """An unknown encoder name, or a checkpoint that cannot be loaded (missing, gated, offline)."""


@dataclass(frozen=True)
class TileTransformSpec:
    """Tile preprocessing: resize (shorter side), optional centre crop, tensor, normalise."""

    resize_px: int
    crop_px: int | None
    interpolation: str = "bicubic"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self):
        if self.interpolation not in {"bicubic", "bilinear", "nearest"}:
            raise ValueError(f"unknown interpolation {self.interpolation!r}")
        if self.crop_px is not None and self.crop_px > self.resize_px:
            raise ValueError(f"crop_px {self.crop_px} is larger than resize_px {self.resize_px}")

    def build(self):
        """A torchvision transform: PIL RGB tile -> float tensor [3, H, W]."""
        from torchvision import transforms

        mode = getattr(transforms.InterpolationMode, self.interpolation.upper())
        steps = [transforms.Resize(self.resize_px, interpolation=mode)]
        if self.crop_px:
            steps.append(transforms.CenterCrop(self.crop_px))
        steps += [transforms.ToTensor(), transforms.Normalize(self.mean, self.std)]
        return transforms.Compose(steps)

    @property
    def input_px(self) -> int:
        return self.crop_px or self.resize_px

    def to_dict(self) -> dict:
        return asdict(self)


Builder = Callable[["TileEncoderSpec", "str | None"], "tuple[object, str]"]   # -> (nn.Module, revision)


@dataclass(frozen=True)
class TileEncoderSpec:
    name: str
    feature_dim: int
    transform: TileTransformSpec
    builder: Builder
    trained: bool
    source: str                       # where the weights come from (Hub id, or "random init")
    description: str
    tile_size_px: int = 256           # the tile the encoder was trained on ...
    target_mpp: float = 0.5           # ... at this resolution
    gated: bool = False
    model_kwargs: dict = field(default_factory=dict)

    def __post_init__(self):
        if not re.fullmatch(r"[a-z0-9][a-z0-9._-]*", self.name):
            raise ValueError(f"encoder name {self.name!r}: use lower-case letters, digits, '.', '_' or '-'")
        if not self.trained and not self.name.startswith("random-"):
            raise ValueError(f"untrained encoder {self.name!r} must be named random-* so nobody mistakes it")


@dataclass
class TileEncoder:
    name: str
    model: object                     # torch.nn.Module in eval mode: [B, 3, H, W] -> [B, feature_dim]
    transform: object                 # PIL RGB tile -> tensor [3, H, W]
    feature_dim: int
    revision: str
    trained: bool
    spec: TileEncoderSpec

    def metadata(self) -> dict:
        """Provenance stored with every feature file."""
        weights = (f"pretrained: {self.spec.source} @ {self.revision}" if self.trained else
                   f"UNTRAINED random initialisation ({self.revision}); for tests and benchmarks only")
        return {"encoder": self.name, "encoder_revision": self.revision, "encoder_trained": self.trained,
                "encoder_source": self.spec.source, "encoder_weights": weights, "feature_dim": self.feature_dim,
                "transform": self.spec.transform.to_dict(), "encoder_tile_size_px": self.spec.tile_size_px,
                "encoder_target_mpp": self.spec.target_mpp}


def _hub_access(spec: TileEncoderSpec, repo_id: str, revision: str | None):
    """Hub failures of loading `repo_id` as `TileEncoderError`s that say how to get access (common.hub)."""
    from common.hub import hub_errors

    hint = (f"request access at https://huggingface.co/{repo_id} (log in and accept the terms), create a read "
            "token at https://huggingface.co/settings/tokens and set HF_TOKEN=<token> (or run `hf auth login`). "
            "No random weights are ever substituted")
    return hub_errors(f"Cannot load tile encoder {spec.name!r} from the Hugging Face Hub ({repo_id})",
                      error=TileEncoderError, repo_id=repo_id, revision=revision, filename="config.json", hint=hint)


def _commit_from_cache_path(path: str) -> str:
    match = re.search(r"[\\/]snapshots[\\/]([0-9a-f]{40})[\\/]", path)
    return match.group(1) if match else "unknown"


def _timm_hub_builder(repo_id: str) -> Builder:
    def build(spec: TileEncoderSpec, revision: str | None):
        import timm
        from huggingface_hub import hf_hub_download

        with _hub_access(spec, repo_id, revision):
            config_path = hf_hub_download(repo_id, "config.json", revision=revision)
        commit = _commit_from_cache_path(config_path)
        pinned = f"hf_hub:{repo_id}@{commit}" if commit != "unknown" else f"hf_hub:{repo_id}"
        try:
            with _hub_access(spec, repo_id, revision):          # Hub and network failures (OSError)
                model = timm.create_model(pinned, pretrained=True, **spec.model_kwargs)
        except (RuntimeError, ValueError, KeyError) as exc:
            raise TileEncoderError(f"Tile encoder {spec.name!r}: the checkpoint from {repo_id}@{commit} could not "
                                   f"be built or loaded ({type(exc).__name__}: {exc}). Delete it from the cache "
                                   "(HF_HOME) and download it again, or update timm.") from exc
        return model, commit
    return build


def _random_vit_builder(seed: int, **vit_kwargs) -> Builder:
    def build(spec: TileEncoderSpec, revision: str | None):
        import torch
        from timm.models.vision_transformer import VisionTransformer

        if revision not in (None, f"random-init-seed{seed}"):
            raise TileEncoderError(f"Tile encoder {spec.name!r} is a random initialisation (seed {seed}); it has no "
                                   f"revision {revision!r}.")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = VisionTransformer(img_size=spec.transform.input_px, num_classes=0, **vit_kwargs)
        return model, f"random-init-seed{seed}"
    return build


_GIGAPATH_TRANSFORM = TileTransformSpec(resize_px=256, crop_px=224, interpolation="bicubic")

TILE_ENCODERS: dict[str, TileEncoderSpec] = {
    "prov-gigapath": TileEncoderSpec(
        name="prov-gigapath", feature_dim=1536, transform=_GIGAPATH_TRANSFORM,
        builder=_timm_hub_builder("prov-gigapath/prov-gigapath"), trained=True,
        source="hf_hub:prov-gigapath/prov-gigapath", gated=True,
        description="Prov-GigaPath tile encoder (DINOv2 ViT-g/14), the WSI-LLaVA tile encoder"),
    "uni": TileEncoderSpec(
        name="uni", feature_dim=1024, transform=TileTransformSpec(resize_px=224, crop_px=None,
                                                                 interpolation="bilinear"),
        builder=_timm_hub_builder("MahmoodLab/uni"), trained=True, source="hf_hub:MahmoodLab/uni", gated=True,
        model_kwargs={"init_values": 1e-5, "dynamic_img_size": True}, tile_size_px=256, target_mpp=0.5,
        description="UNI (ViT-L/16, DINOv2 on Mass-100K)"),
    "random-tiny": TileEncoderSpec(
        name="random-tiny", feature_dim=192, transform=_GIGAPATH_TRANSFORM,
        builder=_random_vit_builder(seed=0, patch_size=16, embed_dim=192, depth=2, num_heads=3),
        trained=False, source="random init",
        description="UNTRAINED 2-layer ViT (192-d) for offline tests"),
    "random-vit-s": TileEncoderSpec(
        name="random-vit-s", feature_dim=384, transform=_GIGAPATH_TRANSFORM,
        builder=_random_vit_builder(seed=0, patch_size=16, embed_dim=384, depth=12, num_heads=6),
        trained=False, source="random init",
        description="UNTRAINED ViT-S/16 (384-d): realistic compute for throughput benchmarks"),
}


def load_tile_encoder(name: str, *, revision: str | None = None, device=None) -> TileEncoder:
    """Build a registered encoder in eval mode (on `device` when given). `revision` pins Hub weights."""
    if name not in TILE_ENCODERS:
        raise TileEncoderError(f"Unknown tile encoder {name!r}; registered: {', '.join(sorted(TILE_ENCODERS))}.")
    spec = TILE_ENCODERS[name]
    model, resolved = spec.builder(spec, revision)
    produced = getattr(model, "num_features", spec.feature_dim)   # timm models expose their output width
    if produced != spec.feature_dim:
        raise TileEncoderError(f"Tile encoder {name!r}: the model outputs {produced}-d features but the registry "
                               f"entry says {spec.feature_dim}; fix the TILE_ENCODERS entry.")
    model.eval()
    if device is not None:
        model.to(device)
    return TileEncoder(name=spec.name, model=model, transform=spec.transform.build(), feature_dim=spec.feature_dim,
                       revision=resolved, trained=spec.trained, spec=spec)
