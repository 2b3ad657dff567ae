"""The official side of benchmarks/metric_parity.py: run the official WSI-Metric scripts, from the user's
checkout of yu5-kim/WSI-LLaVA, on prepared inputs against a running (loopback) judge.

Run by metric_parity.py with the Python that has the official scripts' requirements (openai, pandas,
nltk, rouge, tqdm); it imports nothing from this project (stdlib + those packages only):

    OFFICIAL_PY benchmarks/metric_parity_official.py --official-dir CHECKOUT --inputs DIR --outputs DIR \
        --judge-url http://127.0.0.1:PORT/v1 --model gpt-5-mini [--nltk-data DIR] [--abbreviations a,b]

The scripts' `main()` functions hard-code file names, keys and a relevance filter, so their processing
functions are called in the order `main()` calls them (relevance without the `Report`-only filter):
WSI-Precision stage 1 -> 2 -> 3, WSI-Relevance stage 1 -> 2 -> 3, then NLP_Metric's MetricsEvaluator
(load_data, evaluate, and its calculate_* methods per item). Nothing is edited; the run-time patches
below are applied to the imported modules only, and every one is listed in the output (`patches`):
- WSI-Precision_stage1_extract_claims.py calls `json.dump(processed_claims, file=f, ...)` (json.dump has
  no `file` argument): a TypeError at the first saved item, so stage 1 writes nothing. Its module global
  `json` is replaced by a proxy whose dump() accepts `file=`.
- NLP_Metric.py calls nltk.download() for `punkt` / `wordnet` when NLTK cannot find them (no network
  here): nltk.download is replaced by a function that records the request and downloads nothing.
- nltk.word_tokenize needs the `punkt_tab` model, which no package ships offline: when it is missing, the
  sentence splitter is an untrained Punkt with the abbreviation list given (`--abbreviations`, the same
  list as evaluation/nltk_resources.py), exactly as our side does.
- WordNet for METEOR: `--nltk-data DIR` is put on nltk.data.path (our side lays Debian's WordNet out there).
Writes OUTPUTS/official_results.json.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import sys
import types
from pathlib import Path

MODULES = {
    "P1": "WSI-Metric/WSI-Precision_stage1_extract_claims.py",
    "P2": "WSI-Metric/WSI-Precision_stage2_evaluate_claims.py",
    "P3": "WSI-Metric/WSI-Precision_stage3_calculate_scores.py",
    "R1": "WSI-Metric/WSI-Relevance_stage_1.py",
    "R2": "WSI-Metric/WSI-Relevance_stage_2.py",
    "R3": "WSI-Metric/WSI-Relevance_stage_3.py",
    "NLP": "NLP_Metric.py",
}
PROMPTS = {"P1": "PROMPT_TEMPLATE", "R1": "PROMPT_TEMPLATE", "P2": "EVALUATION_PROMPT", "R2": "EVALUATION_PROMPT"}


class _JsonDumpAcceptingFile(types.ModuleType):
    """`json`, except that dump() also takes the misspelt keyword `file=` (WSI-Precision stage 1)."""

    def __init__(self) -> None:
        super().__init__("json")

    def __getattr__(self, name):
        return getattr(json, name)

    @staticmethod
    def dump(obj, fp=None, **kwargs):
        if fp is None and "file" in kwargs:
            fp = kwargs.pop("file")
        return json.dump(obj, fp, **kwargs)


def load_module(checkout: Path, key: str) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(f"official_wsi_metric_{key}", checkout / MODULES[key])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def prepare_nltk(nltk_data: str | None, abbreviations: list[str], patches: list[str]) -> None:
    import nltk
    import nltk.tokenize as tokenize
    from nltk.tokenize.punkt import PunktParameters, PunktSentenceTokenizer

    if nltk_data:
        nltk.data.path.insert(0, nltk_data)
        patches.append(f"nltk.data.path: {nltk_data} first (WordNet for METEOR, laid out by our side)")
    requested: list[str] = []
    nltk.download = lambda resource, *a, **k: requested.append(resource) or False
    patches.append("nltk.download: replaced by a no-op (no network); NLP_Metric asks for punkt/wordnet when absent")
    try:
        nltk.data.find("tokenizers/punkt_tab/english/")
        patches.append("tokenizer: the installed punkt_tab model (nltk.word_tokenize unchanged)")
    except LookupError:
        params = PunktParameters()
        params.abbrev_types = set(abbreviations)
        fallback = PunktSentenceTokenizer(params)
        tokenize._get_punkt_tokenizer = lambda language="english": fallback
        patches.append("tokenizer: punkt_tab not installed; nltk.word_tokenize's sentence splitter replaced by an "
                       "untrained PunktSentenceTokenizer with abbreviations " + ",".join(sorted(abbreviations))
                       + " (as evaluation/nltk_resources.py)")


@contextlib.contextmanager
def captured(log: Path):
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            yield
    finally:
        log.write_text(out.getvalue(), encoding="utf-8")


def run_stages(mods: dict, args, inputs: Path, outputs: Path, errors: dict) -> None:
    claims = outputs / "extracted_claims.json"
    evaluation = outputs / "evaluation_results.json"
    model_claims = outputs / "extracted_model_claims.json"
    relevance = outputs / "relevance_evaluation_results.json"
    csv, gt = str(inputs / "model_outputs.csv"), str(inputs / "ground_truth_data.json")
    stages = [
        ("precision_stage1", lambda: mods["P1"].process_json_file(str(inputs / "input_qa_pairs.json"), str(claims),
                                                                   client("P1"), args.model)),
        ("precision_stage2", lambda: mods["P2"].process_evaluation(csv, str(claims), str(evaluation), client("P2"),
                                                                    args.model)),
        ("precision_stage3", lambda: mods["P3"].process_evaluation_file(str(evaluation))),
        ("relevance_stage1", lambda: mods["R1"].process_model_outputs(csv, str(model_claims), client("R1"),
                                                                       args.model, None)),
        ("relevance_stage2", lambda: mods["R2"].process_relevance_evaluation(gt, str(model_claims), str(relevance),
                                                                              client("R2"), args.model, None)),
        ("relevance_stage3", lambda: mods["R3"].process_evaluation_file(str(relevance))),
    ]

    def client(key: str):
        return mods[key].initialize_client(args.api_key, args.judge_url)

    for name, call in stages:
        try:
            with captured(outputs / f"{name}.log"):
                call()
        except Exception as exc:          # the scripts raise in places: record it, go on
            errors[name] = f"{type(exc).__name__}: {exc}"


def run_nlu(NLP, path: Path, outputs: Path, errors: dict) -> dict:
    import nltk

    try:
        with captured(outputs / "nlp_metric.log"):
            evaluator = NLP.MetricsEvaluator()
            gt, pred = evaluator.load_data(str(path))
            if not gt:
                return {"averages": None, "per_item": {}, "n_rows": _rows(path)}
            averages = evaluator.evaluate(gt, pred)
            per_item = {}
            for qid in sorted(set(gt) & set(pred)):       # MetricsEvaluator.evaluate's loop, item by item
                ref, cand = nltk.word_tokenize(gt[qid]), nltk.word_tokenize(pred[qid])
                bleu = evaluator.calculate_bleu(ref, cand)
                per_item[qid] = {"bleu_1": bleu[0], "bleu_2": bleu[1], "bleu_3": bleu[2], "bleu_4": bleu[3],
                                 "rouge_l": evaluator.calculate_rouge_l(ref, cand),
                                 "meteor": evaluator.calculate_meteor(ref, cand)}
        return {"averages": averages, "per_item": per_item, "n_rows": _rows(path)}
    except Exception as exc:
        errors["nlp_metric"] = f"{type(exc).__name__}: {exc}"
        return {"averages": None, "per_item": {}, "n_rows": _rows(path)}


def _rows(path: Path) -> int:
    return sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip())


def _load(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    except json.JSONDecodeError as exc:
        return {"_unreadable": f"{exc} ({path.stat().st_size} bytes)"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--official-dir", required=True, type=Path)
    ap.add_argument("--inputs", required=True, type=Path)
    ap.add_argument("--outputs", required=True, type=Path)
    ap.add_argument("--judge-url", required=True)
    ap.add_argument("--model", default="gpt-5-mini")
    ap.add_argument("--api-key", default="sk-loopback-not-a-key")
    ap.add_argument("--nltk-data")
    ap.add_argument("--abbreviations", default="")
    ap.add_argument("--no-stage1-patch", action="store_true", help="run stage 1 as released (it crashes)")
    args = ap.parse_args(argv)
    args.outputs.mkdir(parents=True, exist_ok=True)
    patches: list[str] = []
    mods = {key: load_module(args.official_dir, key) for key in MODULES}
    if not args.no_stage1_patch:
        mods["P1"].json = _JsonDumpAcceptingFile()
        patches.append("WSI-Precision_stage1_extract_claims.py: module global `json` replaced by a proxy whose "
                       "dump() accepts file= (its json.dump(processed_claims, file=f, ...) raises TypeError)")
    prepare_nltk(args.nltk_data, [a for a in args.abbreviations.split(",") if a], patches)
    errors: dict = {}
    run_stages(mods, args, args.inputs, args.outputs, errors)
    nlu = run_nlu(mods["NLP"], args.inputs / "nlu_input.jsonl", args.outputs, errors)
    result = {
        "patches": patches, "stage_errors": errors,
        "prompts": {key: getattr(mods[key], name) for key, name in PROMPTS.items()},
        "precision_claims": _load(args.outputs / "extracted_claims.json"),
        "precision": _load(args.outputs / "aggregated_scores.json"),
        "relevance_claims": _load(args.outputs / "extracted_model_claims.json"),
        "relevance": _load(args.outputs / "relevance_aggregated_scores.json"),
        "nlu": nlu, "python": sys.version.split()[0],
    }
    (args.outputs / "official_results.json").write_text(json.dumps(result, indent=1, ensure_ascii=False),
                                                        encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
