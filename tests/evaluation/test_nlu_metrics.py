"""BLEU / ROUGE-L / METEOR / CIDEr against values worked out by hand, and the offline tokenizer."""

import math
from pathlib import Path

import pytest

from evaluation import nlu_metrics
from evaluation.nltk_resources import (
    split_sentences,
    tokenizer_name,
    word_tokenize,
    wordnet_reader,
)

REF = word_tokenize("the cat is on the mat")
CAND = word_tokenize("the cat sat on the mat")


def test_bleu_by_hand():
    # unigrams 5/6 (the x2, cat, on, mat), bigrams 3/5, trigrams 1/4, 4-grams 0/3 -> method4 gives the
    # zero count 1 / (2 * 5 / ln 6) over 3; equal lengths -> no brevity penalty
    p4 = (math.log(6) / 10) / 3
    expected = [5 / 6, math.sqrt(5 / 6 * 3 / 5), (5 / 6 * 3 / 5 * 1 / 4) ** (1 / 3),
                (5 / 6 * 3 / 5 * 1 / 4 * p4) ** (1 / 4)]
    assert nlu_metrics.bleu_scores(REF, CAND) == pytest.approx(expected)
    assert nlu_metrics.bleu_scores(REF, REF) == pytest.approx([1, 1, 1, 1])
    assert nlu_metrics.bleu_scores(REF, []) == [0, 0, 0, 0]


def test_rouge_l_by_hand():
    # the textbook LCS F1: "the cat on the mat" = 5 of 6 tokens on both sides -> P = R = F = 5/6
    assert nlu_metrics.rouge_l_lcs(REF, CAND) == pytest.approx(5 / 6)
    assert nlu_metrics.rouge_l_lcs(word_tokenize("The Cat"), word_tokenize("the cat")) == pytest.approx(1.0)


# (reference, candidate, ROUGE-L F of the official NLP_Metric.py), the values printed by the `rouge` 1.0.1
# package it calls: Rouge().get_scores(" ".join(candidate tokens), " ".join(reference tokens))[0]["rouge-l"]["f"]
OFFICIAL_ROUGE_L = [
    # one "sentence" each; DISTINCT words: the cat is on mat (5) / the cat sat on mat (5); LCS words {the cat on
    # mat} -> P = R = 4/5
    ("the cat is on the mat", "the cat sat on the mat", 0.7999999950000002),
    ("The Cat", "the cat", 0.0),                                  # case is kept
    # sentences split at ".": union of LCS words over sentence pairs {a} + {c d} = 3 of 4 distinct words each
    ("a b . c d .", "c d . a x .", 0.749999995),
    ("Tumor size 2.5 cm. Grade 2.", "Grade 2. Tumor size 3 cm.", 0.8333333283333335),
    # two real WSI-Bench test reports (WSI-Bench-test.jsonl, metadata Report)
    ("Microscopic observation of the pathology slide reveals a well-differentiated adenocarcinoma characterized by "
     "tumor cells forming acinar structures within the confines of the tumor. There are zones of geographic "
     "necrosis noted within the tumor. The tumor does not exhibit evidence of vascular invasion or perineural "
     "permeation. Based on these observations, the diagnosis is adenocarcinoma.",
     "Microscopic observation of the pathology slide reveals moderately differentiated epithelial cells forming "
     "glandular structures with slight deviation from normal endometrial tissue architecture. The nuclei show "
     "moderate variability in size and shape, indicating nuclear pleomorphism. There is no evidence of lymphatic "
     "or venous vascular invasion. Based on these observations, the diagnosis is endometrioid adenocarcinoma.",
     0.4946236509608048),
]


@pytest.mark.parametrize("reference, candidate, expected", OFFICIAL_ROUGE_L)
def test_rouge_l_is_the_official_scripts_value(reference, candidate, expected):
    """Table 3 compares with numbers from NLP_Metric.py, whose ROUGE-L is the `rouge` package's summary-level
    variant (up to ~0.17 above the textbook LCS F1 on WSI-Bench reports): rouge_l must equal it."""
    assert nlu_metrics.rouge_l(word_tokenize(reference), word_tokenize(candidate)) == pytest.approx(expected, abs=1e-12)
    assert nlu_metrics.rouge_l([], word_tokenize(candidate)) == 0.0 == nlu_metrics.rouge_l(word_tokenize(reference), [])


def test_rouge_l_handles_long_sentences_without_recursion():
    tokens = [f"w{i % 700}" for i in range(3000)]       # the package's recursive trace-back would fail here
    assert nlu_metrics.rouge_l(tokens, tokens) == pytest.approx(1.0, abs=1e-7)


def test_meteor_by_hand_exact_and_stem():
    # 5 matches, P = R = 5/6, 2 chunks over 5 matches -> penalty 0.5 * 0.4^3
    assert nlu_metrics.meteor(REF, CAND, use_wordnet=False) == pytest.approx(5 / 6 * (1 - 0.5 * 0.4 ** 3))
    assert nlu_metrics.meteor(REF, REF, use_wordnet=False) == pytest.approx(1 - 0.5 * (1 / 6) ** 3)
    # stems: "grows" ~ "growing" (Porter) -> 3 matches in one chunk
    assert nlu_metrics.meteor(word_tokenize("the tumor grows"), word_tokenize("the tumor growing"),
                              use_wordnet=False) == pytest.approx(1 - 0.5 * (1 / 3) ** 3)


@pytest.mark.skipif(not Path("/usr/share/wordnet/data.noun").is_file(),
                    reason="Debian wordnet-base not installed (tests/run.sh installs it)")
def test_meteor_uses_wordnet_synonyms_when_installed():
    assert wordnet_reader() is not None
    ref, cand = word_tokenize("the tumor grows"), word_tokenize("the tumour grows")
    assert nlu_metrics.meteor(ref, cand) == pytest.approx(1 - 0.5 * (1 / 3) ** 3)     # tumour ~ tumor
    assert nlu_metrics.meteor(ref, cand, use_wordnet=False) == pytest.approx(2 / 3 * 0.5)   # 2 chunks of 1
    assert "wordnet" in nlu_metrics.settings()["meteor"]


def test_cider_is_corpus_level():
    refs = ["the cat is on the mat", "a dog runs in the park"]
    assert nlu_metrics.cider_scores(refs, refs) == pytest.approx([10.0, 10.0])       # identical: cos 1, x10
    assert nlu_metrics.cider_scores(refs, refs[::-1]) == pytest.approx([0.0, 0.0])   # no shared n-gram
    assert nlu_metrics.cider_scores(refs, ["", "a dog runs"])[0] == 0.0


def test_item_metrics_of_an_empty_prediction_are_zero():
    assert set(nlu_metrics.item_metrics("The cat is on the mat.", " ").values()) == {0.0}


def test_item_metrics_report_both_rouge_l_variants():
    values = nlu_metrics.item_metrics(OFFICIAL_ROUGE_L[-1][0], OFFICIAL_ROUGE_L[-1][1])
    assert values["rouge_l"] == pytest.approx(OFFICIAL_ROUGE_L[-1][2])
    assert values["rouge_l_lcs"] == pytest.approx(0.47863247863247865)
    # BLEU and METEOR of the same pair as NLP_Metric.py computes them (same NLTK calls and tokens)
    assert [values[f"bleu_{n}"] for n in range(1, 5)] == pytest.approx(
        [0.5084745762711864, 0.41873149007826926, 0.33296036977757876, 0.2849360517383335])


def test_tokenizer_matches_word_tokenize_conventions():
    tokens = word_tokenize("Tumour (T2N0M0), e.g. grade 2. Dr. Lee's review: it isn't invasive.")
    assert tokens == ["Tumour", "(", "T2N0M0", ")", ",", "e.g.", "grade", "2", ".", "Dr.", "Lee", "'s", "review",
                      ":", "it", "is", "n't", "invasive", "."]
    assert tokenizer_name()


def test_sentences_keep_list_numbers_with_their_sentence():
    text = "1. Surgery: mastectomy. 2. Chemotherapy: adjuvant.\nEndocrine therapy for 5 years."
    assert split_sentences(text) == ["1. Surgery: mastectomy.", "2. Chemotherapy: adjuvant.",
                                     "Endocrine therapy for 5 years."]
    assert split_sentences("   ") == []
