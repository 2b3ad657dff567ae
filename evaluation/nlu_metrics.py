"""Report-generation text metrics (the paper's Table 3): BLEU-1..4, ROUGE-L, METEOR, CIDEr.

As the official NLP_Metric.py: each text is tokenized with NLTK word_tokenize (offline equivalent when
the Punkt model is missing: `evaluation.nltk_resources`); BLEU-n is NLTK `sentence_bleu` with uniform
weights over 1..n-grams and `SmoothingFunction().method4`; METEOR is NLTK `single_meteor_score` on the
tokens (WordNet synonyms when available, else exact + Porter-stem matching only). Deliberate
differences, recorded in `settings()`:
- ROUGE-L (`rouge_l`, Table 3) is the official script's value: the `rouge` package's summary-level
  variant (distinct words on union LCSs of '.'-split "sentences", case kept), reproduced in `rouge_l`.
  It is NOT the textbook LCS F1, which is reported beside it as `rouge_l_lcs` (`rouge-score`,
  lowercased tokens); on WSI-Bench reports the two differ by up to ~0.17 (the official one is higher);
- CIDEr (pycocoevalcap's CIDEr-D, sigma 6, x10 scale, as published there) is corpus-level: its IDF comes
  from the references of the items scored together (one task), so an item's value depends on its
  corpus. PTB tokenization is replaced by the NLTK tokens lowercased (the PTB tokenizer needs Java).
Every function returns 0.0 for an empty prediction, like the official script's exception handling.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Sequence

from evaluation.nltk_resources import tokenizer_name, word_tokenize, wordnet_reader

NLU_METRICS = ("bleu_1", "bleu_2", "bleu_3", "bleu_4", "rouge_l", "meteor", "cider", "rouge_l_lcs")


class _NoSynonyms:
    """A WordNet stand-in without synsets: METEOR then matches exact words and Porter stems only."""

    @staticmethod
    def synsets(*args, **kwargs) -> list:
        return []


@dataclass(frozen=True)
class _WhitespaceTokenizer:
    def tokenize(self, text: str) -> list[str]:
        return text.split(" ") if text else []


def bleu_scores(reference_tokens: Sequence[str], candidate_tokens: Sequence[str]) -> list[float]:
    """[BLEU-1, BLEU-2, BLEU-3, BLEU-4] of one candidate against one reference."""
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    if not candidate_tokens or not reference_tokens:
        return [0.0, 0.0, 0.0, 0.0]
    smoothing = SmoothingFunction().method4
    scores = []
    for n in range(1, 5):
        weights = tuple(1.0 / n for _ in range(n)) + tuple(0.0 for _ in range(4 - n))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scores.append(float(sentence_bleu([list(reference_tokens)], list(candidate_tokens), weights=weights,
                                              smoothing_function=smoothing)))
    return scores


def rouge_l(reference_tokens: Sequence[str], candidate_tokens: Sequence[str]) -> float:
    """ROUGE-L F exactly as the official NLP_Metric.py gets it from the `rouge` package (1.0.1):
    `Rouge().get_scores(" ".join(candidate), " ".join(reference))[0]["rouge-l"]["f"]`.

    That is the package's summary-level variant, reproduced here (no dependency): both texts are split
    into "sentences" at every "." character, sentences into words at single spaces (case kept); the
    score counts the DISTINCT words that lie on a longest common subsequence of some reference sentence
    and some candidate sentence (the package's `exclusive=True` sets), over the distinct words of the
    reference (recall) and of the candidate (precision); F = 2PR / (P + R + 1e-8). Empty input -> 0.0,
    as the official script's exception handling gives. `rouge_l_lcs` is the textbook LCS F1.
    """
    hyp, ref = _rouge_sentences(" ".join(candidate_tokens)), _rouge_sentences(" ".join(reference_tokens))
    if not hyp or not ref:
        return 0.0
    hyp_words = [sentence.split(" ") for sentence in hyp]
    ref_words = [sentence.split(" ") for sentence in ref]
    n = len({w for words in hyp_words for w in words})
    m = len({w for words in ref_words for w in words})
    union: set[str] = set()
    for reference in ref_words:
        for candidate in hyp_words:
            union |= set(_lcs_words(reference, candidate))
    recall, precision = len(union) / m, len(union) / n
    return 2.0 * ((precision * recall) / (precision + recall + 1e-8))


def _rouge_sentences(text: str) -> list[str]:
    """The `rouge` package's sentence split: at ".", pieces of length 0 dropped, whitespace collapsed."""
    return [" ".join(piece.split()) for piece in text.split(".") if len(piece) > 0]


def _lcs_words(x: list[str], y: list[str]) -> list[str]:
    """The words of one longest common subsequence of x and y, traced back exactly as the `rouge`
    package's `_recon_lcs` does (match, else up when strictly longer, else left); iterative."""
    rows, cols = len(x), len(y)
    table = [[0] * (cols + 1) for _ in range(rows + 1)]
    for i in range(1, rows + 1):
        for j in range(1, cols + 1):
            table[i][j] = table[i - 1][j - 1] + 1 if x[i - 1] == y[j - 1] else max(table[i - 1][j], table[i][j - 1])
    words, i, j = [], rows, cols
    while i > 0 and j > 0:
        if x[i - 1] == y[j - 1]:
            words.append(x[i - 1])
            i, j = i - 1, j - 1
        elif table[i - 1][j] > table[i][j - 1]:
            i -= 1
        else:
            j -= 1
    return words


def rouge_l_lcs(reference_tokens: Sequence[str], candidate_tokens: Sequence[str]) -> float:
    """Textbook ROUGE-L F1 (longest common subsequence, `rouge-score`) over lowercased tokens."""
    from rouge_score import rouge_scorer

    if not candidate_tokens or not reference_tokens:
        return 0.0
    scorer = rouge_scorer.RougeScorer(["rougeL"], tokenizer=_WhitespaceTokenizer())
    score = scorer.score(" ".join(t.lower() for t in reference_tokens),
                         " ".join(t.lower() for t in candidate_tokens))
    return float(score["rougeL"].fmeasure)


def meteor(reference_tokens: Sequence[str], candidate_tokens: Sequence[str], use_wordnet: bool = True) -> float:
    from nltk.translate.meteor_score import single_meteor_score

    if not candidate_tokens or not reference_tokens:
        return 0.0
    reader = wordnet_reader() if use_wordnet else None
    return float(single_meteor_score(list(reference_tokens), list(candidate_tokens),
                                     wordnet=reader if reader is not None else _NoSynonyms()))


def meteor_matching() -> str:
    return "exact+stem+wordnet" if wordnet_reader() is not None else "exact+stem (WordNet not installed)"


def item_metrics(reference: str, prediction: str) -> dict[str, float]:
    """BLEU-1..4, ROUGE-L and METEOR of one item (CIDEr needs the corpus: `cider_scores`)."""
    ref, cand = word_tokenize(reference), word_tokenize(prediction)
    b1, b2, b3, b4 = bleu_scores(ref, cand)
    return {"bleu_1": b1, "bleu_2": b2, "bleu_3": b3, "bleu_4": b4, "rouge_l": rouge_l(ref, cand),
            "meteor": meteor(ref, cand), "rouge_l_lcs": rouge_l_lcs(ref, cand)}


def cider_scores(references: Sequence[str], predictions: Sequence[str]) -> list[float]:
    """Per-item CIDEr-D of a corpus (the items scored together); their mean is the corpus CIDEr."""
    from pycocoevalcap.cider.cider import Cider

    if not references:
        return []
    assert len(references) == len(predictions)
    gts = {i: [" ".join(word_tokenize(r)).lower()] for i, r in enumerate(references)}
    res = {i: [" ".join(word_tokenize(p)).lower()] for i, p in enumerate(predictions)}
    _, scores = Cider().compute_score(gts, res)
    return [float(s) if p.strip() else 0.0 for s, p in zip(scores, predictions)]


def settings() -> dict:
    """How the NLU metrics were computed in this run (stored in summary.json)."""
    return {"tokenizer": tokenizer_name(),
            "bleu": "nltk sentence_bleu, uniform weights 1..n, SmoothingFunction().method4",
            "rouge_l": "as the official script: `rouge` 1.0.1 summary-level ROUGE-L F over the NLTK tokens "
                       "(reimplemented); rouge_l_lcs: rouge-score LCS F1 over lowercased tokens",
            "meteor": f"nltk single_meteor_score, matching {meteor_matching()}",
            "cider": "pycocoevalcap CIDEr-D (sigma 6, x10), corpus = the items of one task"}
