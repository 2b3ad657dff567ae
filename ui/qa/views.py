"""What the Slide Q&A tab shows, as text: the model banner (with the fix matching the reason), the examples
status, the slide panel, the chat messages, the turn note, the live score and the message for a slide without
resolution metadata. Pure functions of the services' state (no components), so they are easy to test and
reuse; the handlers (`ui.qa.slide_handlers`, `ui.qa.chat_handlers`) put them on screen.
"""

import re

from ui.qa.live_scoring import LiveScore
from ui.qa.background import DONE, FAILED
from ui.qa.model_manager import LOADING, NOT_STARTED, READY, ModelStatus
from modeling.slide.errors import MppError
from ui.qa.slide_steps import Step
from ui.qa.sessions import SlideQaSession
from ui.config import AppConfig
from ui.errors import redact
from ui.zerogpu import ON_ZEROGPU


def banner_markdown(status: ModelStatus, config: AppConfig) -> str:
    if status.state == READY:
        trained = ("trained weights" if status.trained else
                   "⚠️ **UNTRAINED**: random weights, its answers are meaningless")
        quant = f" · language model {status.quantization}" if status.quantization else ""
        return f"**Model:** {status.name} — {trained}{quant}"
    if status.state == LOADING:
        return (f"**Model:** loading `{status.name}` in the background — {redact(status.detail)} "
                f"({status.elapsed_s:.0f} s). You can load a slide meanwhile.")
    if status.state == NOT_STARTED:
        return f"**Model:** `{status.name}` loads when the first question is asked (preloading is off)."
    return (f"**Model:** `{status.name}` could not be loaded.\n\n**Why:** {redact(status.detail)}\n\n"
            f"**How to fix:** {_fix_for(status.detail)}\n\n**Meanwhile:** try everything with the untrained demo "
            "model (the button beside this message); its answers are random text.")


def _fix_for(reason: str) -> str:
    """The fix that matches the reason first, then the general one."""
    lower = reason.lower()
    general = ("point `WSI_LLAVA_MODEL` (or `--model`) at a converted WSI-LLaVA checkpoint folder or Hub id and "
               "restart")
    if "offline" in lower or "unreachable" in lower or "cannot be reached" in lower:
        return ("start the app once on a machine with internet access (the checkpoint is downloaded and converted "
                f"into `WSI_LLAVA_MODEL_CACHE`, then used offline), or {general}.")
    if "memory" in lower:
        return (f"use `WSI_LLAVA_LOAD_4BIT=always`, a machine with more (GPU) memory, or a smaller checkpoint; or "
                f"{general}.")
    if "gated" in lower or "hf_token" in lower or "private" in lower:
        return f"set `HF_TOKEN` to a token of an account with access to the repository and restart; or {general}."
    return (f"{general}; gated or private repositories need `HF_TOKEN`; without a GPU use `WSI_LLAVA_LOAD_4BIT=always` "
            "or a machine with more memory.")


def examples_markdown(services) -> str:
    """`services`: ui.qa.services.QaServices."""
    if services.examples is None:
        return ("WSI-Bench examples are off: set `WSI_LLAVA_BENCHMARK` (WSI-Bench test files) and "
                "`WSI_LLAVA_FEATURES_ROOT` (released slide tokens).")
    snapshot = services.examples.snapshot()
    if snapshot.state == FAILED:
        reason = redact(str(snapshot.error)).strip()
        if "WSI_LLAVA_BENCHMARK" in reason:                 # the reason already says how to fix it
            reason = reason.removeprefix("WSI-Bench examples: ")
            return f"WSI-Bench examples unavailable. {reason[:1].upper()}{reason[1:]}"
        return (f"WSI-Bench examples unavailable: {reason.rstrip('.')}. Set `WSI_LLAVA_BENCHMARK` and "
                "`WSI_LLAVA_FEATURES_ROOT` to local folders (or allow access to the Hub).")
    if snapshot.state == DONE:
        return services.catalog.report.summary()
    return f"Loading WSI-Bench examples: {redact(snapshot.phase)} ({snapshot.elapsed_s:.0f} s)"


def example_choices(services) -> list[tuple[str, str]]:
    if services.examples is None or services.examples.state != DONE:
        return []
    return [(example.label, example.slide_id) for example in services.examples.result()]


def _steps_markdown(steps: list[Step]) -> str:
    return "\n".join(f"- {step.name}: {step.seconds:.2f} s — {step.detail}" for step in steps)


def slide_markdown(session: SlideQaSession, note: str = "") -> str:
    if not session.has_slide:
        return note
    if session.tiled is not None:
        info = session.tiled.info
        width, height = info["dimensions"]
        source = ("entered by you: the slide has no resolution metadata"
                  if str(info.get("mpp_source", "")).startswith("override") else info.get("mpp_source"))
        mpp = f"{info['mpp']:.3g} µm/px ({source})" if info.get("mpp") else "no resolution metadata"
        levels = info["level_count"]
        head = (f"**{session.name}** ({session.source}) · {info['vendor']} · {width} × {height} px · "
                f"{levels} level{'' if levels == 1 else 's'} · {mpp}")
    else:
        count, width = session.inputs.slide_tokens.shape[1:] if session.inputs.slide_tokens is not None \
            else session.inputs.tile_features.shape[1:]
        questions = f" · {len(session.example.items)} WSI-Bench questions" if session.example else ""
        head = (f"**{session.name}** ({session.source}) · released features {count} × {width}{questions}. "
                "Released features carry no pixels, so there is no overview image.")
    return "\n\n".join(part for part in (head, _steps_markdown(session.steps), note) if part)


def chat_messages(history: list[tuple[str, str]], pending: tuple[str, str] | None = None) -> list[dict]:
    messages = []
    for question, answer in history + ([pending] if pending else []):
        messages += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    return messages


def turn_markdown(session: SlideQaSession) -> str:
    encoding = next((s for s in reversed(session.steps) if s.name == "slide encoding"), None)
    cached = f" in {encoding.seconds:.2f} s" if encoding else ""
    where = " (ZeroGPU recomputes it in every GPU call)" if ON_ZEROGPU else ""
    return (f"Turn {len(session.history())} about **{session.name}**: slide prefix encoded "
            f"{session.prefix_encodings}× for this slide and model{cached}, reused from the cache for every "
            f"answer{where}.")


def _metric_line(name: str, result) -> str:
    if result is None:
        return f"**{name}:** —"
    value = "—" if result.score is None else f"{result.score:.2f}"
    return f"**{name}:** {value} ({result.status}, {len(result.claims)} claims)"


def score_markdown(score: LiveScore) -> str:
    if score.accuracy is not None:
        acc = score.accuracy
        verdict = {True: "correct ✅", False: "wrong ❌", None: "reference unreadable"}[acc["correct"]]
        read = (f"the answer reads as {acc['extracted']!r} (rule {acc['rule']})" if acc["extracted"] is not None
                else "no option or yes/no could be read from the answer, so it counts as wrong")
        return f"**Accuracy:** {verdict} — {read}; reference {acc['reference_answer']!r}."
    lines = [f"{_metric_line('WSI-Precision', score.wsi_precision)} · "
             f"{_metric_line('WSI-Relevance', score.wsi_relevance)}"]
    if score.approximate:
        lines.append(f"_Approximate: {score.judge_label} matches sentences by embedding similarity instead of the "
                     "paper's LLM judge; not comparable with published numbers._")
    else:
        lines.append(f"_Judge: {score.judge_label}._")
    for name, result in (("Reference claims (WSI-Precision)", score.wsi_precision),
                         ("Answer claims (WSI-Relevance)", score.wsi_relevance)):
        if result is not None and result.claims:
            lines.append(f"<details><summary>{name}</summary>\n\n" + "\n".join(
                f"- {c.score:g} — {c.claim}" for c in result.claims) + "\n\n</details>")
    return "\n\n".join(lines)


MPP_FIELD_HINT = ("Type the slide's microns per pixel (e.g. 0.25 for a 40x scan, 0.5 for 20x) in the \"Microns per "
                  "pixel\" field on the left and press Enter: the slide loads again, no new upload needed.")


def app_mpp_message(exc: MppError) -> str:
    """A slide without resolution metadata, said for this app: the MPP field, not the command-line flags."""
    text = str(exc)
    if "no usable microns-per-pixel" not in text:
        return text                                   # e.g. an implausible value: its own message says why
    head = re.split(r"\s+(?:Its objective power|Give it with)", text)[0]
    power = re.search(r"objective power is ([0-9.]+)x", text)
    hint = (f" Its objective power is {power.group(1)}x, which usually means about "
            f"{10.0 / float(power.group(1)):g} µm/px." if power and float(power.group(1)) > 0 else "")
    return f"{head}{hint} {MPP_FIELD_HINT}"


def ready_note(session: SlideQaSession) -> str:
    if session.example is not None:
        return ("**Ready:** pick a WSI-Bench question (its reference answer is shown and the model's answer "
                "scored) or ask your own.")
    return "**Ready:** ask a question about this slide."
