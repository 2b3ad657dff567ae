"""`evaluate predict`: run a WSI-LLaVA model over WSI-Bench items, one JSONL row per answered item.

    report = run_predictions(PredictConfig(model="./wsi-llava-7b", benchmark="WSI-Bench/", out=Path("p.jsonl"),
                                           features_root=Path("WSIBench-pt/")))

Rows: {schema, question_id, image, task, capability, question, reference, prediction, model, settings,
source_task_name, slide_token_source}, `task` being the canonical task id; `evaluate score` reads them as they are.
`settings` holds every generation setting (`GenerationSettings.record()`: profile, the prompt template
used, sampling, seed ...) plus the model's dtype and quantisation. Defaults are the official inference
(`modeling.generation_settings`, profile "official"); every answer is seeded (`--seed`, default 0), so a
re-run reproduces it.
Resumable: every answer is appended to the output (flushed) as soon as it exists; a re-run skips the
(task, question_id) pairs already there and continues with the rest. A re-run with another model or
other generation settings into the same file is refused (mixing them would corrupt the scores).
Slide inputs are looked up under --features-root (first existing wins): the released path itself
("TCGA-BRCA/<slide>.pt"), our features h5 beside it, "<slide>.pt", "<slide>.h5"
(modeling.slide_inputs.slide_input_candidates). Items without inputs, and items whose inputs cannot be
used, and questions longer than `max_question_chars` (`--max-question-chars`) or whose prompt would not fit
the model's context, are counted and listed in `<out stem>.summary.json` (`failures`), never silently dropped
and never a crash; a re-run retries them. One slide's inputs and its KV-cached prompt prefix are reused for all
of its questions. `batch_size` > 1 (`--batch-size`) answers that many questions at once, across slides
(`evaluation.predict_batched`), with answers equal to one at a time token for token.
Sharded (`--shard i/n`, torchrun/accelerate's RANK/WORLD_SIZE, SLURM job arrays): disjoint shares of the
slides, a journal per shard and one merged predictions file and summary (`evaluation.predict_shards`).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Sequence

from common.atomic import atomic_write_json
from wsi_bench.errors import BenchError
from wsi_bench.files import BenchItem, read_benchmark
from evaluation.errors import EvaluationError
from common.journal import JournalWriter
from evaluation import predict_shards
from evaluation.predict_batched import BatchedAnswers
from modeling.generation_settings import DEFAULT_MAX_QUESTION_CHARS, GenerationSettings

PREDICTIONS_SCHEMA = "wsi-llava.evaluation.predictions/1"
PREDICT_SEED = 0          # every answer is seeded: a re-run (or a resumed run) gives the same answers


@dataclass
class PredictConfig:
    model: str
    benchmark: str
    features_root: Path
    out: Path
    load_4bit: bool = False
    tasks: list[str] | None = None
    split: str | None = None
    generation: GenerationSettings = field(default_factory=lambda: GenerationSettings(seed=PREDICT_SEED))
    dtype: str = "auto"                         # float16 on CUDA (official), float32 on CPU
    device: str | None = None
    limit: int | None = None
    slide_token_source: str | None = None       # features .h5 inputs: None = the model's (modeling.slide_token_sources)
    max_question_chars: int = DEFAULT_MAX_QUESTION_CHARS   # longer questions are failed items (nothing is run)
    batch_size: int = 1                         # questions answered together (1: one at a time, as the official loop)
    shard: str | None = None                    # "i/n"; None: RANK/WORLD_SIZE, a SLURM array, else everything

    def __post_init__(self) -> None:
        self.features_root, self.out = Path(self.features_root), Path(self.out)
        if not self.features_root.is_dir():
            raise EvaluationError(f"--features-root {self.features_root}: not a folder. Point it at the folder "
                                  "with the released slide-token .pt files or the features .h5 files.")
        if self.out.suffix != ".jsonl":
            raise EvaluationError(f"--out {self.out}: use a .jsonl file name.")
        if self.limit is not None and self.limit < 1:
            raise EvaluationError("--limit must be positive.")
        if self.max_question_chars < 1:
            raise EvaluationError("--max-question-chars must be positive.")
        if self.batch_size < 1:
            raise EvaluationError("--batch-size must be positive.")
        if self.batch_size > 1 and self.generation.num_beams > 1:
            raise EvaluationError("--batch-size > 1 does not do beam search; use --batch-size 1 with num_beams > 1.")

    @property
    def summary_path(self) -> Path:
        return self.out.with_name(f"{self.out.stem}.summary.json")


def _settings(config: PredictConfig, loaded) -> dict:
    """Everything that decides the answers, stored on every row (and compared on resume)."""
    generation = config.generation
    template = generation.conversation_template or loaded.processor.generation_template
    return generation.record(conversation_template=template, dtype=str(loaded.model.dtype).removeprefix("torch."),
                             quantization=loaded.quantization, model_is_trained=loaded.is_trained) | {
        "slide_token_source": loaded.model.config.slide_token_source}


def _existing_rows(out: Path) -> tuple[dict[tuple[str, str], tuple[dict, Path]], int]:
    """Rows already answered (each with its file), in `out` and every shard journal beside it
    (`evaluation.predict_shards`)."""
    rows, unreadable = predict_shards.read_rows(out)
    done = {}
    for row, path in rows:
        if (key := predict_shards.row_key(row)) is not None:
            done[key] = (row, path)
    return done, unreadable


def _check_same_run(done: dict, model: str, settings: dict, out: Path) -> None:
    for row, path in done.values():
        if row.get("model") != model or row.get("settings") != settings:
            also = "" if path == out else f" (and {out.stem}.shard-*-of-*.jsonl beside it)"
            raise EvaluationError(
                f"{path} already holds predictions of model {row.get('model')!r} with settings "
                f"{row.get('settings')}; this run is {model!r} with {settings}. Use another --out file (or "
                f"delete {out}{also} to start over) so that one file holds one model's answers.")


def load_items(config: PredictConfig, problems: list[str]) -> list[BenchItem]:
    try:
        items = read_benchmark(config.benchmark, split=config.split, tasks=config.tasks, problems=problems)
    except BenchError as exc:
        raise EvaluationError(f"--benchmark {config.benchmark}: {exc}") from exc
    if not items:
        raise EvaluationError(f"--benchmark {config.benchmark}: no items"
                              + (f" for tasks {config.tasks}" if config.tasks else "") + ".")
    return items


def _row(item: BenchItem, prediction: str, model: str, settings: dict, slide_token_source: str) -> dict:
    return {"schema": PREDICTIONS_SCHEMA, "question_id": item.question_id, "image": item.image, "task": item.task,
            "capability": item.capability, "question": item.question, "reference": item.answer,
            "prediction": prediction, "model": model, "settings": settings,
            "source_task_name": item.source_task_name,
            "slide_token_source": slide_token_source}   # "released" (.pt) or the model's (modeling.slide_token_sources)


def _answer_slide(loaded, path: Path, items: Sequence[BenchItem], config: PredictConfig,
                  write: Callable, fail: Callable) -> None:
    """Answer every question about one slide; the slide prefix is computed once (history reset per item)."""
    from modeling.errors import ModelError
    from modeling.generation_settings import check_question_length
    from modeling.inference import SlideChatSession
    from modeling.model_inputs import slide_model_inputs

    try:
        inputs = slide_model_inputs(path, loaded)
        session = SlideChatSession(loaded.model, loaded.processor, inputs, config.generation)   # checks the inputs
    except ModelError as exc:
        for item in items:
            fail(item, exc)
        return
    for item in items:
        session.history = []
        try:
            check_question_length(item.question, config.max_question_chars)
            answer = session.ask(item.question)
        except ModelError as exc:
            fail(item, exc)
            continue
        write(item, answer, session.slide_inputs.slide_token_source(loaded.model.config))


def run_predictions(config: PredictConfig, loaded=None,
                    emit: Callable[[str], None] = lambda m: print(m, file=sys.stderr)) -> dict:
    """Answer every pending item; returns (and writes to `<out stem>.summary.json`) the run report.
    `loaded` is a `modeling.checkpoints.LoadedModel` (loaded from `config.model` when None)."""
    from modeling.errors import ModelError

    started = time.monotonic()
    problems: list[str] = []
    shard = predict_shards.resolve(config.shard)
    all_items = load_items(config, problems)
    items = predict_shards.shard_items(all_items, shard)
    done, unreadable = _existing_rows(config.out)
    if loaded is None:
        from modeling.checkpoints import load_model

        try:
            loaded = load_model(config.model, load_4bit=config.load_4bit, device=config.device, dtype=config.dtype)
        except ModelError as exc:
            raise EvaluationError(f"--model {config.model}: {exc}") from exc
    if config.slide_token_source:
        try:
            loaded.model.set_slide_token_source(config.slide_token_source)
        except ModelError as exc:
            raise EvaluationError(f"--slide-token-source {config.slide_token_source}: {exc}") from exc
    emit(loaded.banner())
    settings = _settings(config, loaded)
    _check_same_run(done, loaded.name, settings, config.out)
    pending = [item for item in items if (item.task, item.question_id) not in done]
    n_done_before = len(items) - len(pending)
    if config.limit is not None:
        pending = pending[:config.limit]
    missing, failures = [], []
    by_image: dict[str, list[BenchItem]] = {}
    for item in pending:
        by_image.setdefault(item.image, []).append(item)
    counts = {"answered": 0}

    def write(item: BenchItem, answer: str, slide_token_source: str) -> None:
        out.write(_row(item, answer, loaded.name, settings, slide_token_source))
        counts["answered"] += 1

    def fail(item: BenchItem, error: Exception) -> None:
        failures.append({"question_id": item.question_id, "task": item.task, "image": item.image,
                         "error": str(error)})

    from modeling.slide_inputs import find_slide_input, slide_input_candidates

    last_emit = time.monotonic()
    batched = BatchedAnswers(loaded, config.generation, config.batch_size, write, fail,
                             config.max_question_chars) if config.batch_size > 1 else None
    with JournalWriter(predict_shards.journal_path(config.out, shard)) as out:
        for image, slide_items in by_image.items():
            path = find_slide_input(config.features_root, image)
            if path is None:
                missing += [{"question_id": i.question_id, "task": i.task, "image": image,
                             "tried": [str(p) for p in slide_input_candidates(config.features_root, image)]}
                            for i in slide_items]
            elif batched is not None:
                batched.add(path, slide_items)
            else:
                _answer_slide(loaded, path, slide_items, config, write, fail)
            if time.monotonic() - last_emit > 10:
                last_emit = time.monotonic()
                emit(f"answered {counts['answered']}/{len(pending)} items; {len(missing)} without slide inputs, "
                     f"{len(failures)} failed")
        if batched is not None:
            batched.finish()
    n_answered = counts["answered"]
    report = {"schema": "wsi-llava.evaluation.predict-summary/1",
              "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "model": loaded.name, "model_is_trained": loaded.is_trained, "settings": settings,
              "benchmark": config.benchmark, "features_root": str(config.features_root), "out": str(config.out),
              "n_items": len(items), "n_done_before": n_done_before, "n_answered": n_answered,
              "n_missing_inputs": len(missing), "n_failed": len(failures),
              "n_remaining": len(items) - n_done_before - n_answered, "n_unreadable_lines": unreadable,
              "missing_inputs": missing, "failures": failures, "benchmark_problems": problems,
              "elapsed_s": round(time.monotonic() - started, 3), "batch_size": config.batch_size,
              "shard": shard.label, "shard_source": shard.source}
    return _write_report(config, shard, all_items, report)


def _write_report(config: PredictConfig, shard, all_items: list[BenchItem], report: dict) -> dict:
    """One shard: the report is the summary. Several: the shard's report beside its journal, then the merge
    of every journal into `--out` and the merged summary (`evaluation.predict_shards`)."""
    if shard.count == 1 and not predict_shards.shard_journals(config.out):
        atomic_write_json(config.summary_path, report)
        return report
    if shard.count == 1:        # after a sharded run: rows of its journals count as done, so merge them in
        report["merged_from_shard_journals"] = [str(path) for path in predict_shards.shard_journals(config.out)]
    atomic_write_json(predict_shards.shard_summary_path(config.out, shard), report)
    base = {key: report[key] for key in ("model", "model_is_trained", "settings", "benchmark", "features_root")}
    merged = predict_shards.merge(config.out, config.summary_path, all_items, base)
    return report | {"merged": {key: merged[key] for key in ("out", "n_items", "n_predicted", "n_remaining",
                                                             "complete")} | {"summary": str(config.summary_path)}}
