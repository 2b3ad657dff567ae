"""Inter-annotator agreement: percent agreement, Cohen's kappa (per annotator pair) and Fleiss' kappa.

Input: `ratings[item][annotator] = label` (labels: accepted / edited / rejected). Definitions:
- percent agreement: among items with at least two ratings, the share where every rating is the same;
- Cohen's kappa for two annotators over the items both rated: (p_o - p_e) / (1 - p_e) with p_e from each
  annotator's own label frequencies;
- Fleiss' kappa over the items with the most common number of ratings n >= 2 (Fleiss needs the same n
  for every item): (P_bar - P_e) / (1 - P_e).
A kappa whose chance agreement is 1 (everyone always used one label) is undefined and reported as None.

    report = agreement_report({"p1": {"ann": "accepted", "bob": "rejected"}, ...})
"""

from __future__ import annotations

from collections import Counter
from itertools import combinations
from typing import Mapping, Sequence


def percent_agreement(ratings: Mapping[object, Mapping[str, str]]) -> tuple[float | None, int]:
    """(percent of multiply-rated items where all ratings agree, number of such items)."""
    multi = [set(r.values()) for r in ratings.values() if len(r) >= 2]
    if not multi:
        return None, 0
    return 100.0 * sum(len(labels) == 1 for labels in multi) / len(multi), len(multi)


def cohen_kappa(labels_a: Sequence[str], labels_b: Sequence[str]) -> float | None:
    if len(labels_a) != len(labels_b):
        raise ValueError("cohen_kappa needs two label lists of the same length")
    n = len(labels_a)
    if n == 0:
        return None
    observed = sum(a == b for a, b in zip(labels_a, labels_b, strict=True)) / n
    freq_a, freq_b = Counter(labels_a), Counter(labels_b)
    expected = sum(freq_a[label] * freq_b[label] for label in set(freq_a) | set(freq_b)) / (n * n)
    if expected >= 1.0:
        return None
    return (observed - expected) / (1.0 - expected)


def fleiss_kappa(counts: Sequence[Mapping[str, int]]) -> float | None:
    """Fleiss' kappa from per-item category counts; every item must have the same number of ratings."""
    if not counts:
        return None
    totals = {sum(c.values()) for c in counts}
    if len(totals) != 1:
        raise ValueError(f"fleiss_kappa needs the same number of ratings per item, got {sorted(totals)}")
    (n,) = totals
    if n < 2:
        return None
    items = len(counts)
    categories = set().union(*(c.keys() for c in counts))
    p_j = {cat: sum(c.get(cat, 0) for c in counts) / (items * n) for cat in categories}
    p_i = [(sum(v * v for v in c.values()) - n) / (n * (n - 1)) for c in counts]
    p_bar = sum(p_i) / items
    p_e = sum(p * p for p in p_j.values())
    if p_e >= 1.0:
        return None
    return (p_bar - p_e) / (1.0 - p_e)


def pairwise_cohen(ratings: Mapping[object, Mapping[str, str]], min_items: int = 1) -> list[dict]:
    annotators = sorted({name for r in ratings.values() for name in r})
    results = []
    for a, b in combinations(annotators, 2):
        shared = [r for r in ratings.values() if a in r and b in r]
        if len(shared) < min_items:
            continue
        results.append({"annotators": [a, b], "n_items": len(shared),
                        "kappa": cohen_kappa([r[a] for r in shared], [r[b] for r in shared])})
    return results


def fleiss_from_ratings(ratings: Mapping[object, Mapping[str, str]]) -> tuple[float | None, int, int]:
    """(kappa, number of raters per item used, number of items used)."""
    sizes = Counter(len(r) for r in ratings.values() if len(r) >= 2)
    if not sizes:
        return None, 0, 0
    n = max(sizes, key=lambda size: (sizes[size], size))
    counts = [Counter(r.values()) for r in ratings.values() if len(r) == n]
    return fleiss_kappa(counts), n, len(counts)


def agreement_report(ratings: Mapping[object, Mapping[str, str]]) -> dict:
    percent, n_multi = percent_agreement(ratings)
    pairs = pairwise_cohen(ratings)
    defined = [p["kappa"] for p in pairs if p["kappa"] is not None]
    fleiss, raters, n_items = fleiss_from_ratings(ratings)
    return {"n_items_multiply_rated": n_multi, "percent_agreement": _r(percent),
            "cohen_kappa_pairs": [{**p, "kappa": _r(p["kappa"])} for p in pairs],
            "cohen_kappa_mean": _r(sum(defined) / len(defined)) if defined else None,
            "fleiss_kappa": _r(fleiss), "fleiss_raters_per_item": raters, "fleiss_n_items": n_items}


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
