"""What the Slide Q&A tab shows, as text: the model banner, the examples status, the slide panel, the
chat messages, the turn note and the live score. Pure functions of the services' state (no components), so
they are easy to test and reuse; `ui.qa_tab` puts them on screen.
"""

from evaluation.live_scoring import LiveScore
from modeling.background import DONE, FAILED
from modeling.model_manager import LOADING, NOT_STARTED, READY, ModelStatus
from modeling.slide_service import Step
from modeling.slide_sessions import SlideQaSession
from ui.app_config import AppConfig
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
            "**How to fix:** point `WSI_LLAVA_MODEL` (or `--model`) at a converted WSI-LLaVA checkpoint folder or "
            "Hub id and restart; gated or private repositories need `HF_TOKEN`; without a GPU use "
            "`WSI_LLAVA_LOAD_4BIT=always` or a machine with more memory. Meanwhile you can use the untrained demo "
            "model (the button beside this message): it runs everything, but its answers are random text.")


def examples_markdown(services) -> str:
    """`services`: ui.qa_tab.QaServices."""
    if services.examples is None:
        return ("WSI-Bench examples are off: set `WSI_LLAVA_BENCHMARK` (WSI-Bench test files) and "
                "`WSI_LLAVA_FEATURES_ROOT` (released slide tokens).")
    snapshot = services.examples.snapshot()
    if snapshot.state == FAILED:
        return (f"WSI-Bench examples unavailable: {redact(str(snapshot.error))} Set `WSI_LLAVA_BENCHMARK` and "
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
        mpp = (f"{info['mpp']:.3g} µm/px ({info['mpp_source']})" if info.get("mpp") else "no resolution metadata")
        head = (f"**{session.name}** ({session.source}) · {info['vendor']} · {width} × {height} px · "
                f"{info['level_count']} levels · {mpp}")
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
        return (f"**Accuracy:** {verdict} — the answer reads as {acc['extracted']!r} (rule {acc['rule']!r}); "
                f"reference {acc['reference_answer']!r}.")
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
