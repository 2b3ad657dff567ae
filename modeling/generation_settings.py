"""The one home of the generation defaults: `GenerationSettings`, its named profiles and their options.

Torch-free on purpose: the app's settings table (`ui.config`) and every command line (`wsi-llava ask`,
`wsi-llava evaluate predict`) read their defaults from here at start-up. `modeling.inference` turns the
settings into `generate()` arguments (logits processors, stopping criteria).

Profiles (`PROFILES`; `GenerationSettings.from_profile(name, **overrides)`):

- "official" (the default): WSI-LLaVA's release f9ac921, `llava/eval/model_vqa.py` as `scripts/wsi-vqa.sh`
  runs it: prompt template llava_v1, sampling at temperature 0.2 (`do_sample = temperature > 0`), top_p
  None, num_beams 1, no_repeat_ngram_size 3, max_new_tokens 2048, the decoded answer `.strip()`ped; the
  model in float16 on CUDA (`INFERENCE_DTYPES`).
- "greedy": the official settings at temperature 0 (model_vqa.py's only switch to greedy decoding; WSI-Bench
  scores move by a few points, upstream issue #12).
- "fork-8714afc": yu5-kim/WSI-LLaVA's later `model_vqa.py` (commit 8714afc, not the release): the official
  settings plus repetition_penalty 1.1, its stop words (`KeywordsStoppingCriteria`) and its answer trimming
  (`trim_generated_answer`, restated in `trim_answer_8714afc`).

Every setting, the profile and the seed are recorded with each answer (`GenerationSettings.record()`).

Limits on the input, checked before any model work: a question longer than `DEFAULT_MAX_QUESTION_CHARS`
(`--max-question-chars`) is refused by `check_question_length`; `modeling.inference` then refuses a prompt
(question + slide tokens + earlier turns) that, with `max_new_tokens`, would not fit the model's context.

    settings = GenerationSettings.from_profile("greedy", max_new_tokens=64)
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass, replace

from modeling.conversation import INFERENCE_TEMPLATE, TEMPLATES
from modeling.errors import ModelError

DEFAULT_PROFILE = "official"
# The fork's stop words for the llava_v1 template (model_vqa.py@8714afc build_prompt_and_stop_words:
# conv.sep2, f"{conv.roles[0]}:", then fixed markers; duplicates and empties removed in order).
FORK_8714AFC_STOP_WORDS = ("</s>", "USER:", "\nUSER:", "\nASSISTANT:", "\nHuman:", "\nQUESTION:", "\nTASK:")
# trim_generated_answer@8714afc: the answer is cut at the first of these markers.
_FORK_8714AFC_TRIM_MARKERS = ("\nUSER:", "\nASSISTANT:", "\nHuman:", "\nQuestion:", "\nQUESTION:", "\nTASK:",
                              "\nASK:", "\nQ:")
# The longest question accepted (the app, `wsi-llava ask`, `evaluate predict`; `--max-question-chars`). WSI-Bench's
# longest question has 755 characters (16,747 questions of the released test files and a train sample); 4,000
# characters (about 1,000-1,300 LLaMA tokens of English pathology text at 3-4 characters a token) fit beside the
# template (~40 tokens), the 576 slide tokens and the official 2,048 new tokens in Vicuna-7B v1.5's 4,096-token
# context (1,432 tokens left for the question).
DEFAULT_MAX_QUESTION_CHARS = 4000
# Model precision at inference: "auto" is the official float16 on CUDA, float32 on CPU.
INFERENCE_DTYPES = ("auto", "float16", "bfloat16", "float32")


@dataclass(frozen=True)
class GenerationSettings:
    """How an answer is generated. The field defaults are the official release's (profile "official")."""

    temperature: float = 0.2                  # wsi-vqa.sh --temperature 0.2; 0 = greedy
    top_p: float | None = None                # model_vqa.py --top_p default None
    num_beams: int = 1                        # model_vqa.py --num_beams default 1
    no_repeat_ngram_size: int = 3             # model_vqa.py: hard-coded; sees [BOS] + the answer only
    max_new_tokens: int = 2048                # model_vqa.py@f9ac921: hard-coded (1024 before 7a98bbc)
    repetition_penalty: float | None = None   # the fork's 1.1; sees [BOS] + the answer only, like the n-gram ban
    stop_words: tuple[str, ...] = ()          # the fork's KeywordsStoppingCriteria
    trim_answer: bool = False                 # the fork's trim_generated_answer
    conversation_template: str | None = None  # None: the processor's generation template (llava_v1)
    seed: int | None = None                   # torch.manual_seed before every answer (None: not seeded)
    profile: str = DEFAULT_PROFILE            # the profile these settings started from (recorded)

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ModelError(f"GenerationSettings.temperature must be >= 0, got {self.temperature}")
        if self.max_new_tokens <= 0:
            raise ModelError(f"GenerationSettings.max_new_tokens must be positive, got {self.max_new_tokens}")
        if self.no_repeat_ngram_size < 0 or self.num_beams < 1:
            raise ModelError("GenerationSettings: no_repeat_ngram_size must be >= 0 and num_beams >= 1")
        if self.repetition_penalty is not None and self.repetition_penalty <= 0:
            raise ModelError(f"GenerationSettings.repetition_penalty must be > 0, got {self.repetition_penalty}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ModelError(f"GenerationSettings.top_p must be in (0, 1], got {self.top_p}")
        if self.conversation_template is not None and self.conversation_template not in TEMPLATES:
            raise ModelError(f"Unknown conversation template {self.conversation_template!r}; known: "
                             f"{', '.join(sorted(TEMPLATES))}.")
        if self.profile not in PROFILE_SETTINGS:
            raise ModelError(f"Unknown generation profile {self.profile!r}; known: {', '.join(PROFILES)}.")
        if isinstance(self.stop_words, list):
            object.__setattr__(self, "stop_words", tuple(self.stop_words))

    @classmethod
    def from_profile(cls, name: str = DEFAULT_PROFILE, **overrides) -> "GenerationSettings":
        """The named profile's settings, with `overrides` (None values ignored) on top."""
        if name not in PROFILES:
            raise ModelError(f"Unknown generation profile {name!r}; known: {', '.join(PROFILES)}.")
        return replace(PROFILES[name], **{k: v for k, v in overrides.items() if v is not None})

    @classmethod
    def greedy(cls, **overrides) -> "GenerationSettings":
        return cls.from_profile("greedy", **overrides)

    @property
    def do_sample(self) -> bool:
        return self.temperature > 0           # model_vqa.py: do_sample=True if args.temperature > 0

    def record(self, **resolved) -> dict:
        """Every setting as plain JSON values (stored on every prediction row), `resolved` on top (e.g. the
        template actually used when `conversation_template` is None)."""
        values = asdict(self)
        values["stop_words"] = list(self.stop_words)
        values["do_sample"] = self.do_sample
        return values | resolved


PROFILE_SETTINGS: dict[str, dict] = {
    "official": {},
    "greedy": {"temperature": 0.0},
    "fork-8714afc": {"repetition_penalty": 1.1, "stop_words": FORK_8714AFC_STOP_WORDS, "trim_answer": True},
}
PROFILE_DESCRIPTIONS: dict[str, str] = {
    "official": "WSI-LLaVA release f9ac921: model_vqa.py as scripts/wsi-vqa.sh runs it (llava_v1, sampling at "
                "0.2, no_repeat_ngram_size 3, 2048 new tokens)",
    "greedy": "the official settings with temperature 0 (greedy decoding)",
    "fork-8714afc": "yu5-kim/WSI-LLaVA model_vqa.py at 8714afc (not the release): the official settings plus "
                    "repetition penalty 1.1, its stop words and its answer trimming",
}
PROFILES: dict[str, GenerationSettings] = {
    name: GenerationSettings(profile=name, **values) for name, values in PROFILE_SETTINGS.items()}
OFFICIAL = PROFILES[DEFAULT_PROFILE]


def trim_answer_8714afc(text: str) -> str:
    """The fork's `trim_generated_answer` (8714afc), restated: cut at the first role/question marker, then
    keep the non-empty stripped lines, dropping a line equal to the one kept before it and stopping at
    the first line that is mostly digits (more than max(16, 70% of its length))."""
    if not text:
        return text
    cut = min([text.find(marker) for marker in _FORK_8714AFC_TRIM_MARKERS if marker in text] + [len(text)])
    kept: list[str] = []
    for line in text[:cut].strip().splitlines():
        line = line.strip()
        if not line:
            continue
        if sum(ch.isdigit() for ch in line) > max(16, int(0.7 * len(line))):
            break
        if kept and line == kept[-1]:
            continue
        kept.append(line)
    return "\n".join(kept).strip()


def finish_answer(settings: GenerationSettings, decoded: str) -> str:
    """The answer as the profile reports it: model_vqa.py's `.strip()`, then the fork's trimming if set."""
    text = decoded.strip()
    return trim_answer_8714afc(text) if settings.trim_answer else text


def check_question_length(question: str, max_chars: int = DEFAULT_MAX_QUESTION_CHARS) -> None:
    """ModelError naming both numbers when `question` is longer than `max_chars` characters (nothing is run)."""
    if len(question) > max_chars:
        raise ModelError(f"The question has {len(question):,} characters; at most {max_chars:,} are accepted "
                         f"(--max-question-chars; WSI-Bench's longest question has 755). Shorten the question.")


def resolve_dtype_name(name: str, device: str) -> str:
    """"auto" -> float16 on CUDA (model_vqa.py), float32 on CPU; other names as they are."""
    if name not in INFERENCE_DTYPES:
        raise ModelError(f"Unknown dtype {name!r}; choose one of {', '.join(INFERENCE_DTYPES)}.")
    if name != "auto":
        return name
    return "float16" if str(device).startswith("cuda") else "float32"


# -- command-line options (`wsi-llava ask`, `wsi-llava evaluate predict`) -----------------------------
_OVERRIDES = ("temperature", "max_new_tokens", "no_repeat_ngram_size", "repetition_penalty", "top_p", "seed")


def add_generation_options(parser: argparse.ArgumentParser, seed_default: int | None = None,
                           seed_help: str = "torch.manual_seed before every answer (default: not seeded)") -> None:
    """The generation options every command shares; defaults are the profile's (official)."""
    profiles = "; ".join(f"{name}: {text}" for name, text in PROFILE_DESCRIPTIONS.items())
    group = parser.add_argument_group("generation", f"Profiles: {profiles}. The options below override the profile.")
    group.add_argument("--profile", choices=tuple(PROFILES), default=DEFAULT_PROFILE,
                       help=f"named generation settings (default: {DEFAULT_PROFILE})")
    group.add_argument("--conv-template", choices=sorted(TEMPLATES), default=None,
                       help=f"prompt template (default: the checkpoint's, {INFERENCE_TEMPLATE} as wsi-vqa.sh; "
                            "training used vicuna_v1)")
    group.add_argument("--max-new-tokens", type=int, help=f"answer length limit (official: {OFFICIAL.max_new_tokens})")
    group.add_argument("--temperature", type=float,
                       help=f"0 = greedy (official: {OFFICIAL.temperature:g}, sampling)")
    group.add_argument("--top-p", type=float, help="nucleus sampling (official: none)")
    group.add_argument("--no-repeat-ngram-size", type=int,
                       help=f"0 disables (official: {OFFICIAL.no_repeat_ngram_size})")
    group.add_argument("--repetition-penalty", type=float, help="(official: none; fork-8714afc: 1.1)")
    group.add_argument("--seed", type=int, default=seed_default, help=seed_help)
    group.add_argument("--max-question-chars", type=_positive_int, default=DEFAULT_MAX_QUESTION_CHARS,
                       help=f"longer questions are refused before any model work (default: "
                            f"{DEFAULT_MAX_QUESTION_CHARS}; WSI-Bench's longest has 755)")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def add_dtype_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dtype", choices=INFERENCE_DTYPES, default="auto",
                        help="model precision (auto: float16 on CUDA as the official code, float32 on CPU)")


def settings_from_args(args: argparse.Namespace) -> GenerationSettings:
    """The options of `add_generation_options` -> GenerationSettings (ModelError on bad values)."""
    overrides = {name: getattr(args, name) for name in _OVERRIDES}
    return GenerationSettings.from_profile(args.profile, conversation_template=args.conv_template, **overrides)


__all__ = ["GenerationSettings", "PROFILES", "PROFILE_DESCRIPTIONS", "DEFAULT_PROFILE", "OFFICIAL",
           "FORK_8714AFC_STOP_WORDS", "INFERENCE_DTYPES", "DEFAULT_MAX_QUESTION_CHARS", "check_question_length",
           "trim_answer_8714afc", "finish_answer",
           "resolve_dtype_name", "add_generation_options", "add_dtype_option", "settings_from_args"]
