"""The app's settings: one table (`SETTINGS`) gives every setting its command-line flag, its environment
variable, its default and its meaning; `load_config(argv, environ)` reads them into `AppConfig`.

A flag wins over its environment variable, which wins over the default. Secrets (HF_TOKEN, the judge's
API key) are never settings: huggingface_hub reads HF_TOKEN itself and the judge reads the variable
*named* by WSI_LLAVA_JUDGE_API_KEY_ENV, so no secret value is held, shown or logged here.

    python app.py --help                       # every flag, with its variable
    python -m ui.config --markdown         # the README table of flags and variables
"""

from __future__ import annotations

import argparse
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Mapping

from evaluation.judge_types import JUDGE_NAMES
from llm.client import LLMSettings
from modeling.conversation import INFERENCE_TEMPLATE, TEMPLATES
from modeling.generation_settings import (
    DEFAULT_MAX_QUESTION_CHARS,
    DEFAULT_PROFILE,
    OFFICIAL,
    PROFILES,
    GenerationSettings,
)
from ui.qa.model_manager import LOAD_4BIT_POLICIES
from ui.qa.upload_sandbox import (
    DEFAULT_MAX_COMPRESSION_RATIO,
    DEFAULT_MAX_UPLOAD_MB,
    DEFAULT_QUOTA_FRACTION,
    new_upload_root,
)
from ui.config_values import (
    parse_auto_or_positive,
    parse_bool,
    parse_choice,
    parse_from_profile,
    parse_optional,
    parse_positive,
    parse_ratio,
    parse_roots,
    parse_workers,
)
from ui.viewer.settings import DEFAULT_VIEWER_JS, OSD_VERSION, viewer_js_problem

class AppConfigError(ValueError):
    """A flag or environment variable with an unusable value; the message names it and the fix."""


def _template(text: str) -> str | None:
    return None if not text.strip() else parse_choice(tuple(sorted(TEMPLATES)))(text.strip())


@dataclass(frozen=True)
class Setting:
    field: str
    env: str
    flag: str
    default: str
    parse: Callable[[str], object]
    help: str
    env_fallbacks: tuple[str, ...] = ()       # read when `env` is unset (e.g. what Spaces set)


DEFAULT_MODEL = "Lucas-yuc/WSI-LLaVA-7b"
SETTINGS: tuple[Setting, ...] = (
    Setting("host", "WSI_LLAVA_HOST", "--host", "127.0.0.1", str, "address to listen on (0.0.0.0: all interfaces)",
            ("GRADIO_SERVER_NAME",)),
    Setting("port", "WSI_LLAVA_PORT", "--port", "7860", int, "port to listen on", ("GRADIO_SERVER_PORT",)),
    Setting("share", "WSI_LLAVA_SHARE", "--share", "false", parse_bool, "also open a public gradio.live link"),
    Setting("model", "WSI_LLAVA_MODEL", "--model", DEFAULT_MODEL, str,
            "WSI-LLaVA checkpoint: a known name, a converted folder or a Hub id; the published LLaVA-layout "
            "checkpoints are converted once into --model-cache"),
    Setting("model_revision", "WSI_LLAVA_MODEL_REVISION", "--model-revision", "", parse_optional, "Hub revision of --model"),
    Setting("load_4bit", "WSI_LLAVA_LOAD_4BIT", "--load-4bit", "auto", parse_choice(LOAD_4BIT_POLICIES),
            "4-bit nf4 language model: auto (on CUDA only), always, never"),
    Setting("device", "WSI_LLAVA_DEVICE", "--device", "auto", str, "cpu, cuda, cuda:1 ... (auto: cuda when available)"),
    Setting("preload", "WSI_LLAVA_PRELOAD", "--preload", "true", parse_bool,
            "start loading the model in the background at start-up (false: on the first question)"),
    Setting("model_cache", "WSI_LLAVA_MODEL_CACHE", "--model-cache", "~/.cache/wsi-llava/models",
            lambda t: Path(t).expanduser(), "folder for converted checkpoints"),
    Setting("slide_encoder", "WSI_LLAVA_SLIDE_ENCODER", "--slide-encoder", "prov-gigapath",
            lambda t: None if t == "none" else parse_choice(("prov-gigapath",))(t),
            "slide encoder attached when converting (prov-gigapath, gated: needs HF_TOKEN; none: WSI-Bench "
            "slide tokens only, no slide uploads)"),
    Setting("benchmark", "WSI_LLAVA_BENCHMARK", "--benchmark", "Lucas-yuc/WSI-Bench", parse_optional,
            "WSI-Bench files for the examples: a folder, a file or a Hub dataset id (empty: no examples)"),
    Setting("benchmark_split", "WSI_LLAVA_BENCHMARK_SPLIT", "--benchmark-split", "test", parse_optional,
            "keep only that split's benchmark files: *_<split>.json[l] and the released names, e.g. WSI-Bench-open-question.jsonl is test (empty: all)"),
    Setting("features_root", "WSI_LLAVA_FEATURES_ROOT", "--features-root", "Lucas-yuc/WSIBench-pt", parse_optional,
            "released slide tokens (.pt) / features (.h5) of the examples: a folder or a Hub dataset id"),
    Setting("max_examples", "WSI_LLAVA_MAX_EXAMPLES", "--max-examples", "100", parse_positive(int),
            "at most this many example slides in the picker"),
    Setting("results_dir", "WSI_LLAVA_RESULTS_DIR", "--results-dir", "results", lambda t: Path(t).expanduser(),
            "folder of `wsi-llava evaluate score` runs for the Metrics tab"),
    Setting("upload_dir", "WSI_LLAVA_UPLOAD_DIR", "--upload-dir", "", parse_optional,
            "where per-session upload folders are made (default: a new folder in the system temp dir)"),
    Setting("max_upload_mb", "WSI_LLAVA_MAX_UPLOAD_MB", "--max-upload-mb", f"{DEFAULT_MAX_UPLOAD_MB:g}", parse_positive(float),
            "largest accepted upload (and unpacked .zip), in MB"),
    Setting("upload_quota_gb", "WSI_LLAVA_UPLOAD_QUOTA_GB", "--upload-quota-gb", "auto", parse_auto_or_positive,
            f"disk space all sessions' uploads may use together, in GB; an upload that would exceed it is refused "
            f"(auto: {DEFAULT_QUOTA_FRACTION:g} times the free space of the upload folder's disk at start-up)"),
    Setting("max_zip_ratio", "WSI_LLAVA_MAX_ZIP_RATIO", "--max-zip-ratio", f"{DEFAULT_MAX_COMPRESSION_RATIO:g}", parse_ratio,
            "largest compression ratio (unpacked : compressed bytes) of an uploaded .zip and of each member "
            "unpacking to over 1 MB; slide data is compressed already (about 1:1)"),
    Setting("allowed_roots", "WSI_LLAVA_ALLOWED_ROOTS", "--allowed-roots", "", parse_roots,
            f"folders of slides on this server offered in the Q&A tab ('{os.pathsep}'-separated); no other "
            "server path is ever opened on a user's request"),
    Setting("session_ttl_min", "WSI_LLAVA_SESSION_TTL_MIN", "--session-ttl-min", "120", parse_positive(float),
            "a session idle this long is ended and its uploads deleted (closing the tab ends it at once)"),
    Setting("tile_workers", "WSI_LLAVA_TILE_WORKERS", "--tile-workers", "auto", parse_workers,
            "tile-reading worker processes for feature extraction (auto: the slide pipeline's default)"),
    Setting("tile_batch_size", "WSI_LLAVA_TILE_BATCH_SIZE", "--tile-batch-size", "64", parse_positive(int),
            "tiles per tile-encoder batch"),
    Setting("generation_profile", "WSI_LLAVA_GENERATION_PROFILE", "--generation-profile", DEFAULT_PROFILE,
            parse_choice(tuple(PROFILES)),
            "named generation settings: official (the WSI-LLaVA release's model_vqa.py + wsi-vqa.sh), greedy "
            "(official at temperature 0), fork-8714afc (the fork's later repetition penalty 1.1, stop words, "
            "answer trimming)"),
    Setting("conv_template", "WSI_LLAVA_CONV_TEMPLATE", "--conv-template", "", _template,
            f"prompt template of questions: {', '.join(sorted(TEMPLATES))} (empty: the checkpoint's, "
            f"{INFERENCE_TEMPLATE} as the official inference; vicuna_v1 is the training template)"),
    Setting("max_new_tokens", "WSI_LLAVA_MAX_NEW_TOKENS", "--max-new-tokens", "profile", parse_from_profile(int),
            f"default answer length limit in tokens (profile: the generation profile's; official "
            f"{OFFICIAL.max_new_tokens}); adjustable in the tab"),
    Setting("temperature", "WSI_LLAVA_TEMPERATURE", "--temperature", "profile", parse_from_profile(float),
            f"default sampling temperature, 0 = greedy (profile: the generation profile's; official "
            f"{OFFICIAL.temperature:g}); adjustable in the tab"),
    Setting("max_question_chars", "WSI_LLAVA_MAX_QUESTION_CHARS", "--max-question-chars",
            str(DEFAULT_MAX_QUESTION_CHARS), parse_positive(int),
            "longest accepted question in characters (WSI-Bench's longest has 755); a longer one is refused "
            "before any model work, as is a question whose prompt and max new tokens exceed the model's context"),
    Setting("judge", "WSI_LLAVA_JUDGE", "--judge", "offline", parse_choice(JUDGE_NAMES),
            "live WSI-Precision/Relevance judge: offline (approximate, no network) or openai"),
    Setting("judge_model", "WSI_LLAVA_JUDGE_MODEL", "--judge-model", "", parse_optional,
            "judge LLM name (openai judge) or embedding model folder (offline judge)"),
    Setting("judge_base_url", "WSI_LLAVA_JUDGE_BASE_URL", "--judge-base-url", LLMSettings.base_url, str,
            "OpenAI-compatible endpoint of the openai judge"),
    Setting("judge_api_key_env", "WSI_LLAVA_JUDGE_API_KEY_ENV", "--judge-api-key-env", LLMSettings.api_key_env, str,
            "NAME of the environment variable holding the judge's API key (the key itself is never a setting)"),
    Setting("judge_cache", "WSI_LLAVA_JUDGE_CACHE", "--judge-cache", "", parse_optional,
            "SQLite file caching the openai judge's replies (empty: no cache)"),
    Setting("review_store", "WSI_LLAVA_REVIEW_STORE", "--review-store", "curation.sqlite", str,
            "the curation review store: a SQLite file or an SQLAlchemy URL (Curation review tab)"),
    Setting("users_file", "WSI_LLAVA_USERS_FILE", "--users-file", "", parse_optional,
            "name/password list for signing in to the review tab when not on a Space"),
    Setting("viewer_js", "WSI_LLAVA_VIEWER_JS", "--viewer-js", DEFAULT_VIEWER_JS, parse_optional,
            f"a local openseadragon.min.js ({OSD_VERSION}) the app serves to browsers that cannot reach the CDN "
            "(default: the copy `npm ci --prefix ui/viewer` installed, else jsDelivr pinned with an SRI hash)"),
    Setting("slides_root", "WSI_LLAVA_SLIDES_ROOT", "--slides-root", "", parse_optional,
            "folder of WSI-Bench slide files for the zoomable viewer (ROOT/<slide id>.svs, ROOT/<project>/..., "
            "GDC download folders, DICOM folders)"),
)
SETTINGS_BY_FIELD = {setting.field: setting for setting in SETTINGS}


def _default(name: str):
    """The parsed default of setting `name`: the table is the one home of the app's defaults."""
    setting = SETTINGS_BY_FIELD[name]
    return setting.parse(setting.default)


SECRET_ENV_HINTS = ("HF_TOKEN", "OPENAI_API_KEY")   # read by their libraries, never by this module


@dataclass(frozen=True)
class AppConfig:
    """Every setting of the app; the defaults are the table's (`SETTINGS`), parsed."""

    host: str = _default("host")
    port: int = _default("port")
    share: bool = _default("share")
    model: str = _default("model")
    model_revision: str | None = _default("model_revision")
    load_4bit: str = _default("load_4bit")
    device: str = _default("device")
    preload: bool = _default("preload")
    model_cache: Path = _default("model_cache")
    slide_encoder: str | None = _default("slide_encoder")
    benchmark: str | None = _default("benchmark")
    benchmark_split: str | None = _default("benchmark_split")
    features_root: str | None = _default("features_root")
    max_examples: int = _default("max_examples")
    results_dir: Path = _default("results_dir")
    upload_dir: str | None = _default("upload_dir")
    max_upload_mb: float = _default("max_upload_mb")
    allowed_roots: tuple[Path, ...] = _default("allowed_roots")
    session_ttl_min: float = _default("session_ttl_min")
    tile_workers: int | None = _default("tile_workers")
    tile_batch_size: int = _default("tile_batch_size")
    generation_profile: str = _default("generation_profile")
    conv_template: str | None = _default("conv_template")
    max_new_tokens: int | None = _default("max_new_tokens")      # None: the profile's (set in __post_init__)
    temperature: float | None = _default("temperature")         # None: the profile's (set in __post_init__)
    judge: str = _default("judge")
    judge_model: str | None = _default("judge_model")
    judge_base_url: str = _default("judge_base_url")
    judge_api_key_env: str = _default("judge_api_key_env")
    judge_cache: str | None = _default("judge_cache")
    review_store: str = _default("review_store")
    users_file: str | None = _default("users_file")
    max_question_chars: int = _default("max_question_chars")
    upload_quota_gb: float | None = _default("upload_quota_gb")    # None: from the free disk space (the sandbox's)
    max_zip_ratio: float = _default("max_zip_ratio")
    viewer_js: str | None = _default("viewer_js")
    slides_root: str | None = _default("slides_root")

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise AppConfigError(f"--port / WSI_LLAVA_PORT: {self.port} is not a port number (1-65535).")
        if self.load_4bit not in LOAD_4BIT_POLICIES:
            raise AppConfigError(f"--load-4bit / WSI_LLAVA_LOAD_4BIT: choose one of {LOAD_4BIT_POLICIES}.")
        if self.judge not in JUDGE_NAMES:
            raise AppConfigError(f"--judge / WSI_LLAVA_JUDGE: choose one of {JUDGE_NAMES}.")
        if self.judge == "openai" and not self.judge_model:
            raise AppConfigError("--judge openai needs --judge-model / WSI_LLAVA_JUDGE_MODEL (e.g. gpt-4o-2024-08-06).")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.judge_api_key_env):
            raise AppConfigError("--judge-api-key-env / WSI_LLAVA_JUDGE_API_KEY_ENV must be the NAME of an "
                                 "environment variable (e.g. OPENAI_API_KEY), not a key.")
        if self.generation_profile not in PROFILES:
            raise AppConfigError(f"--generation-profile / WSI_LLAVA_GENERATION_PROFILE: choose one of "
                                 f"{', '.join(PROFILES)}.")
        profile = PROFILES[self.generation_profile]
        for name in ("max_new_tokens", "temperature"):
            if getattr(self, name) is None:
                object.__setattr__(self, name, getattr(profile, name))
        if self.temperature < 0:
            raise AppConfigError("--temperature / WSI_LLAVA_TEMPERATURE must be >= 0.")
        if self.max_new_tokens < 1:
            raise AppConfigError("--max-new-tokens / WSI_LLAVA_MAX_NEW_TOKENS must be positive.")
        for root in self.allowed_roots:
            if not root.is_dir():
                raise AppConfigError(f"--allowed-roots / WSI_LLAVA_ALLOWED_ROOTS: {root} is not a folder.")
        if self.viewer_js and (problem := viewer_js_problem(self.viewer_js)):
            raise AppConfigError(f"--viewer-js / WSI_LLAVA_VIEWER_JS: {problem}")
        if self.slides_root and not Path(self.slides_root).expanduser().is_dir():
            raise AppConfigError(f"--slides-root / WSI_LLAVA_SLIDES_ROOT: {self.slides_root} is not a folder.")

    def generation_settings(self, temperature: float | None = None, max_new_tokens: int | None = None,
                            conversation_template: str | None = None) -> GenerationSettings:
        """The app's generation settings: the configured profile, with the tab's values (None: the
        configured default) on top. ModelError (modeling) on an invalid value."""
        return GenerationSettings.from_profile(
            self.generation_profile,
            temperature=self.temperature if temperature is None else float(temperature),
            max_new_tokens=self.max_new_tokens if max_new_tokens is None else int(max_new_tokens),
            conversation_template=conversation_template or self.conv_template)

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def upload_quota_bytes(self) -> int | None:
        """The uploads' quota for all sessions; None: the sandbox's default from the free disk space at start-up."""
        return None if self.upload_quota_gb is None else int(self.upload_quota_gb * 1024 ** 3)

    @property
    def examples_enabled(self) -> bool:
        return bool(self.benchmark and self.features_root)

    def upload_root(self) -> Path:
        """The folder per-session upload folders go in (created; a fresh temp folder by default)."""
        if self.upload_dir:
            path = Path(self.upload_dir).expanduser()
            path.mkdir(parents=True, exist_ok=True)
            return path
        return new_upload_root()

    def public_items(self) -> list[tuple[str, str]]:
        """(variable, value) pairs safe to show: no secret is a setting; a password in the store URL is hidden."""
        items = []
        for setting in SETTINGS:
            value = asdict(self)[setting.field]
            if isinstance(value, tuple):
                value = os.pathsep.join(str(v) for v in value)
            text = "" if value is None else str(value)
            if setting.field == "review_store":
                text = re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", text)
            items.append((setting.env, text))
        return items


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python app.py", description="WSI-LLaVA studio: slide Q&A, curation review and metric dashboards.",
        epilog="Every flag has an environment variable (shown in brackets); a flag wins over its variable. "
               "Secrets are read by their libraries only: HF_TOKEN (Hub access, gated models) and the judge's "
               "API key variable.")
    for setting in SETTINGS:
        names = f"{setting.env}" + "".join(f", {name}" for name in setting.env_fallbacks)
        text = f"{setting.help} [{names}; default: {setting.default or 'none'}]"
        if setting.parse is parse_bool:
            parser.add_argument(setting.flag, dest=setting.field, default=None, nargs="?", const="true",
                                metavar="BOOL", help=text)
        else:
            parser.add_argument(setting.flag, dest=setting.field, default=None, help=text)
    return parser


def load_config(argv: list[str] | None = None, environ: Mapping[str, str] | None = None) -> AppConfig:
    """Flags, then environment variables, then defaults; AppConfigError names the bad flag/variable."""
    environ = os.environ if environ is None else environ
    args = vars(_parser().parse_args(argv))
    values = {}
    for setting in SETTINGS:
        raw, origin = args.get(setting.field), setting.flag
        if raw is None:
            for name in (setting.env, *setting.env_fallbacks):
                if name in environ:
                    raw, origin = environ[name], name
                    break
        if raw is None:
            raw, origin = setting.default, f"the default of {setting.env}"
        try:
            values[setting.field] = setting.parse(raw)
        except ValueError as exc:
            raise AppConfigError(f"{origin}: {raw!r} is not valid ({exc}).") from exc
    return AppConfig(**values)


def markdown_table() -> str:
    lines = ["| flag | environment variable | default | meaning |", "|---|---|---|---|"]
    for s in SETTINGS:
        env = f"`{s.env}`" + "".join(f" (or `{name}`)" for name in s.env_fallbacks)
        lines.append(f"| `{s.flag}` | {env} | `{s.default}` | {s.help} |" if s.default else
                     f"| `{s.flag}` | {env} | none | {s.help} |")
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    from common.pipes import exit_quietly_on_closed_pipe

    sys.exit(exit_quietly_on_closed_pipe(lambda: print(markdown_table())))
