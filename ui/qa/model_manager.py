"""The app's models: the configured WSI-LLaVA checkpoint, loaded in a background thread so start-up never
waits for it, and the tiny demo model, loaded only when a person accepts it (it is UNTRAINED).

    manager = ModelManager(ModelSpec("Lucas-yuc/WSI-LLaVA-7b", load_4bit="auto", convert_dir=Path("models")))
    manager.start()                      # returns at once; loading runs in the background
    manager.status()                     # ModelStatus: loading / ready / failed, name, trained?, reason
    loaded = manager.get()               # LoadedModel, or ModelError saying why not (still loading, failed)
    demo = manager.get(demo=True)        # wsi-llava-tiny-random, built offline in a few seconds

Known LLaVA-1.5-layout checkpoints (`modeling.checkpoints.KNOWN_CHECKPOINTS`, the published WSI-LLaVA
weights) are converted once with `modeling.convert_llava.convert` into `convert_dir` and loaded from
there. 4-bit policy: "auto" quantises the language model on CUDA only, "always" everywhere, "never"
nowhere. Every failure becomes a ModelError whose message says what went wrong and how to fix it
(offline, gated, missing weights, out of GPU or host memory); nothing falls back to random weights
unless `get(demo=True)` is asked for explicitly.

Offline machines: `common.hub.settle_hub_access([...sources])` probes the Hub once (a TCP connection, seconds at
most) when a source is a Hub id; when it cannot be reached, huggingface_hub is switched to offline mode
for the process, so cached files still load and everything else fails at once with "offline?", instead
of after a minute of connection retries per file.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from ui.qa.background import DONE, FAILED, IDLE, BackgroundTask
from modeling.demo_model import DEMO_MODEL_NAME
from modeling.errors import ModelError

log = logging.getLogger("wsi_llava.app")

LOAD_4BIT_POLICIES = ("auto", "always", "never")
LOADING, READY, FAILED_STATE, NOT_STARTED = "loading", "ready", "failed", "not started"


@dataclass(frozen=True)
class ModelSpec:
    source: str                           # known name, local folder or Hub id
    revision: str | None = None
    load_4bit: str = "auto"               # LOAD_4BIT_POLICIES
    device: str = "auto"                  # "auto" = cuda when available, else cpu
    convert_dir: Path | None = None       # where known LLaVA-layout checkpoints are converted to
    slide_encoder: str | None = "prov-gigapath"   # attached when converting (None: slide tokens only)

    def __post_init__(self) -> None:
        if not self.source.strip():
            raise ModelError("The model source is empty: give a known name, a checkpoint folder or a Hub id.")
        if self.load_4bit not in LOAD_4BIT_POLICIES:
            raise ModelError(f"4-bit policy {self.load_4bit!r}: choose one of {LOAD_4BIT_POLICIES}.")


@dataclass(frozen=True)
class ModelStatus:
    state: str                 # LOADING | READY | FAILED_STATE | NOT_STARTED
    name: str                  # the loaded model's display name, else the configured source
    trained: bool | None       # None until known
    detail: str                # the phase while loading, the banner when ready, the reason when failed
    elapsed_s: float
    is_demo: bool
    quantization: str | None = None


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    from modeling.checkpoints import default_device

    return default_device()


def wants_4bit(policy: str, device: str) -> bool:
    return policy == "always" or (policy == "auto" and device.startswith("cuda"))


def converted_folder(spec: ModelSpec) -> Path:
    if spec.convert_dir is None:
        raise ModelError(f"{spec.source} must be converted before use, and no folder for converted checkpoints "
                         "is configured.")
    suffix = f"-{spec.slide_encoder}" if spec.slide_encoder else "-slide-tokens-only"
    revision = f"@{spec.revision}" if spec.revision else ""
    return Path(spec.convert_dir) / (spec.source.replace("/", "--") + revision + suffix)


def load_configured(spec: ModelSpec, report=lambda phase: None):
    """Load `spec` (converting a known LLaVA-layout checkpoint first); every failure is a ModelError."""
    from modeling.checkpoints import KNOWN_CHECKPOINTS, load_model

    device = resolve_device(spec.device)
    quantize = wants_4bit(spec.load_4bit, device)
    source = spec.source
    known = KNOWN_CHECKPOINTS.get(source)
    try:
        if known is not None and known.kind == "llava_layout":
            folder = converted_folder(spec)
            if not (folder / "config.json").is_file():
                report(f"fetching {source} from the Hub and converting it to {folder} (first start only; "
                       "~14 GB to download)")
                from modeling.convert_llava import convert

                convert(source, folder, base=known.lora_base, revision=spec.revision, slide_encoder=spec.slide_encoder)
            source = str(folder)
        report(f"loading {spec.source} on {device}" + (" (4-bit nf4)" if quantize else ""))
        return load_model(source, load_4bit=quantize, device=device,
                          revision=None if source != spec.source else spec.revision)
    except ModelError:
        raise
    except MemoryError as exc:
        raise ModelError(f"Not enough host memory to load {spec.source}: use 4-bit loading (policy 'always'), a "
                         "machine with more RAM, or a smaller checkpoint.") from exc
    except ImportError as exc:
        raise ModelError(f"Loading {spec.source} needs a package that is not installed ({exc}); install the "
                         "project's requirements.txt.") from exc
    except (OSError, RuntimeError, ValueError) as exc:
        if "out of memory" in str(exc).lower():
            raise ModelError(f"Not enough GPU memory to load {spec.source} on {device} ({exc}). Use 4-bit loading "
                             "(policy 'always'), a bigger GPU, or a smaller checkpoint.") from exc
        raise ModelError(f"Loading {spec.source} failed: {type(exc).__name__}: {exc}") from exc


def _load_demo(spec: ModelSpec, report=lambda phase: None):
    from modeling.checkpoints import load_model

    device = resolve_device(spec.device)
    report(f"building {DEMO_MODEL_NAME} on {device}")
    return load_model(DEMO_MODEL_NAME, load_4bit=False, device=device)


class ModelManager:
    """The configured model (background) and the demo model (on request); both loaded at most once."""

    def __init__(self, spec: ModelSpec):
        self.spec = spec
        self._main = BackgroundTask("model", lambda report: load_configured(spec, report))
        self._demo = BackgroundTask("demo-model", lambda report: _load_demo(spec, report))

    def start(self) -> "ModelManager":
        """Start loading the configured model in the background."""
        return self.begin(demo=False)

    def begin(self, demo: bool = False) -> "ModelManager":
        """Start loading the configured (or the demo) model unless it has started already."""
        self._task(demo).start()
        return self

    def _task(self, demo: bool) -> BackgroundTask:
        return self._demo if demo else self._main

    def status(self, demo: bool = False) -> ModelStatus:
        task = self._task(demo)
        snapshot = task.snapshot()
        name = DEMO_MODEL_NAME if demo else self.spec.source
        if snapshot.state == IDLE:
            return ModelStatus(NOT_STARTED, name, None, "loads on first use", 0.0, demo)
        if snapshot.state == FAILED:
            return ModelStatus(FAILED_STATE, name, None, str(snapshot.error), snapshot.elapsed_s, demo)
        if snapshot.state == DONE:
            loaded = task.result()
            return ModelStatus(READY, loaded.name, loaded.is_trained, loaded.banner(), snapshot.elapsed_s, demo,
                               loaded.quantization)
        return ModelStatus(LOADING, name, None, snapshot.phase, snapshot.elapsed_s, demo)

    def get(self, demo: bool = False):
        """The LoadedModel; ModelError when it is still loading (loading starts if it had not) or failed."""
        task = self._task(demo).start()
        snapshot = task.snapshot()
        if snapshot.state == FAILED:
            error = snapshot.error
            if isinstance(error, ModelError):
                raise error
            raise ModelError(f"Loading {self.status(demo).name} failed: {type(error).__name__}: {error}") from error
        if snapshot.state != DONE:
            raise ModelError(f"The model {self.status(demo).name} is still loading ({snapshot.phase}, "
                             f"{snapshot.elapsed_s:.0f} s so far). Try again in a moment.")
        return task.result()

    def wait(self, demo: bool = False, timeout_s: float | None = None):
        """Start (if needed), wait for the load and return it (ModelError on failure or timeout)."""
        task = self._task(demo).start()
        task.wait(timeout_s)
        return self.get(demo)
