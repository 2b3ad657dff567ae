"""The evidence-heatmap deletion test with more seeds, slides and random draws; prints JSON.

For every training seed a tiny WSI-LLaVA is trained on the synthetic lesion task of
tests/helpers/evidence_task.py ("Is there a tumor?" -> "Yes" iff a 3 x 3-tile lesion is on the
12 x 12-tile slide); for every held-out lesion slide and attribution method the answer "Yes" is
explained, then the top 10 % of tiles by relevance, `--draws` random 10 % sets and the lesion itself are
replaced by the slide's mean tile, and the drops of log p("Yes") (nats) are recorded. A "random_ranking"
control ranks tiles at random, to show what the criteria give when the scores carry no information.

Per case: top_drop, random drops (mean, std, max), lesion_drop, lesion_recall (share of the lesion among
the top tiles), completeness_gap, seconds. Summary per method: how often top_drop > max(random),
> mean + 3 std, > half the lesion's drop, recall >= 8/9, and all of the test's criteria at once
(tests/model/test_evidence.py: > max(random), > half the lesion's drop, recall >= 8/9); medians.

Run: `python benchmarks/evidence_deletion.py [--seeds 0 1 2] [--slides 5] [--draws 100]`
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

METHODS = ("integrated_gradients", "grad_x_input", "random_ranking")


def explain(model, processor, slide, method: str, seed: int):
    from modeling.evidence import explain_answer
    from modeling.evidence_methods import EvidenceSettings
    from tests.helpers.evidence_task import QUESTION

    if method != "random_ranking":
        return explain_answer(model, processor, slide.inputs, [], QUESTION, slide.answer,
                              settings=EvidenceSettings(method=method))
    evidence = explain_answer(model, processor, slide.inputs, [], QUESTION, slide.answer,
                              settings=EvidenceSettings(method="grad_x_input"))
    evidence.relevance = np.random.default_rng(seed).permutation(len(evidence.relevance)).astype(np.float64)
    evidence.method = "random_ranking"
    return evidence


def run_case(model, processor, slide_seed: int, method: str, draws: int) -> dict:
    from tests.helpers.evidence_task import deletion_experiment, make_region_slide

    slide = make_region_slide(slide_seed, lesion=True)
    started = time.perf_counter()
    evidence = explain(model, processor, slide, method, slide_seed)
    seconds = time.perf_counter() - started
    numbers = deletion_experiment(model, processor, slide, evidence, draws=draws, seed=slide_seed)
    random = np.array(numbers.pop("random_drops"))
    return numbers | {"slide_seed": slide_seed, "explain_seconds": round(seconds, 3),
                      "random_drop_mean": float(random.mean()), "random_drop_std": float(random.std()),
                      "random_drop_max": float(random.max()),
                      "beats_max_random": bool(numbers["top_drop"] > random.max()),
                      "beats_mean_3std": bool(numbers["top_drop"] > random.mean() + 3 * random.std())}


def summarize(cases: list[dict]) -> dict:
    summary = {}
    for method in METHODS:
        rows = [c for c in cases if c["method"] == method]
        if not rows:
            continue
        summary[method] = {
            "cases": len(rows),
            "beats_max_random": sum(c["beats_max_random"] for c in rows),
            "beats_mean_3std": sum(c["beats_mean_3std"] for c in rows),
            "recovers_half_lesion_drop": sum(c["top_drop"] > 0.5 * c["lesion_drop"] for c in rows),
            "lesion_recall_at_least_8_of_9": sum(c["lesion_recall"] >= 8 / 9 for c in rows),
            "passes_the_test_criteria": sum(c["beats_max_random"] and c["top_drop"] > 0.5 * c["lesion_drop"]
                                            and c["lesion_recall"] >= 8 / 9 for c in rows),
            "median_top_drop": float(np.median([c["top_drop"] for c in rows])),
            "median_random_drop_max": float(np.median([c["random_drop_max"] for c in rows])),
            "median_lesion_drop": float(np.median([c["lesion_drop"] for c in rows])),
            "mean_lesion_recall": float(np.mean([c["lesion_recall"] for c in rows])),
            "median_explain_seconds": float(np.median([c["explain_seconds"] for c in rows])),
        }
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds")
    parser.add_argument("--slides", type=int, default=5, help="held-out lesion slides per trained model")
    parser.add_argument("--draws", type=int, default=100, help="random 10%% masks per slide")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    args = parser.parse_args()
    from tests.helpers.evidence_task import train_region_model

    cases, training = [], []
    for seed in args.seeds:
        started = time.perf_counter()
        model, processor, steps = train_region_model(seed=seed)
        training.append({"seed": seed, "steps": steps, "seconds": round(time.perf_counter() - started, 2)})
        for slide_seed in range(10_000 + 100 * seed, 10_000 + 100 * seed + args.slides):
            for method in args.methods:
                cases.append(run_case(model, processor, slide_seed, method, args.draws) | {"train_seed": seed})
    print(json.dumps({"benchmark": "evidence_deletion", "draws": args.draws, "mask_fraction": 0.1,
                      "baseline": "slide_mean_tile", "training": training, "summary": summarize(cases),
                      "cases": cases}, indent=1))


if __name__ == "__main__":
    main()
