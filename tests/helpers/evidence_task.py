"""A synthetic slide task whose answer depends on a known region, and a tiny WSI-LLaVA trained on it.

Slides are a G x G grid of tiles (level-0 tiles of 512 px, tiled at half resolution: 256 px at the
tiling level). Every tile's feature is OFFSET (features are not centred, like real tile-encoder
features) + N(0, 1) noise; on half the slides the tiles of one R x R block (the "lesion", anywhere on
the slide) also get AMPLITUDE * U for a fixed unit direction U. The question is QUESTION; the answer is
"Yes" with a lesion and "No" without, so a "Yes" rests on the lesion's tiles alone.

    model, processor, steps = train_region_model(seed=0)             # ~40 steps, seconds on CPU
    slide = make_region_slide(seed=123, lesion=True)                 # RegionSlide: inputs + the lesion tiles
    numbers = deletion_experiment(model, processor, slide, explain_answer(...))   # the deletion test's drops
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from modeling.evidence import answer_log_likelihood, replace_tiles
from modeling.slide.tile_layout import TileLayout
from modeling.slide_inputs import TILE_FEATURES, SlideInputs
from tests.helpers.tiny_models import TINY_TILE_FEATURE_DIM, tiny_model_and_processor

QUESTION = "Is there a tumor?"
ANSWERS = {True: "Yes", False: "No"}
GRID = 12                    # tiles per side: 144 tiles
REGION = 3                   # lesion side in tiles: 9 tiles (6 %)
TILE_LEVEL0_PX = 512
TILE_TILING_PX = 256
AMPLITUDE = 6.0


def _direction(dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1234)
    direction = torch.randn(dim, generator=generator)
    offset = 0.5 * torch.randn(dim, generator=generator)
    return direction / direction.norm(), offset


@dataclass
class RegionSlide:
    inputs: SlideInputs
    region: np.ndarray           # [R * R] indices of the lesion's tiles (where it would be, without one)
    lesion: bool

    @property
    def answer(self) -> str:
        return ANSWERS[self.lesion]


def make_region_slide(seed: int, lesion: bool, grid: int = GRID, region: int = REGION,
                      dim: int = TINY_TILE_FEATURE_DIM, amplitude: float = AMPLITUDE) -> RegionSlide:
    """One synthetic slide: tiles in row-major order, the lesion an R x R block at a random place."""
    generator = torch.Generator().manual_seed(seed)
    direction, offset = _direction(dim)
    rows, cols = np.divmod(np.arange(grid * grid), grid)                       # [N] tile row / column
    top, left = (int(v) for v in torch.randint(0, grid - region + 1, (2,), generator=generator))
    inside = (rows >= top) & (rows < top + region) & (cols >= left) & (cols < left + region)
    features = offset + torch.randn(grid * grid, dim, generator=generator)     # [N, D]
    if lesion:
        features[torch.from_numpy(inside)] += amplitude * direction
    coords_level0 = np.stack([cols, rows], axis=1).astype(np.int64) * TILE_LEVEL0_PX           # [N, 2] x, y
    coords_tiling = torch.from_numpy(coords_level0 * TILE_TILING_PX // TILE_LEVEL0_PX).float()
    layout = TileLayout(f"synthetic-{seed}", coords_level0, TILE_LEVEL0_PX,
                        (grid * TILE_LEVEL0_PX, grid * TILE_LEVEL0_PX))
    inputs = SlideInputs(TILE_FEATURES, f"synthetic-{seed}", tile_features=features.unsqueeze(0),
                         coords_tiling_px=coords_tiling.unsqueeze(0), tile_encoder="random-tiny", layout=layout)
    return RegionSlide(inputs, np.flatnonzero(inside), lesion)


def train_region_model(max_steps: int = 200, target_loss: float = 0.03, batch_size: int = 8, seed: int = 0,
                       learning_rate: float = 2e-3, amplitude: float = AMPLITUDE, log=None):
    """A tiny WSI-LLaVA trained (all weights, AdamW, gradient norm clipped at 1) to answer QUESTION from the
    lesion's presence until the mean loss of the last 10 steps is below `target_loss`; returns
    (model in eval mode, processor, steps trained).

    Weights start at N(0, 0.1) instead of the tiny models' N(0, 0.02): from the smaller start the slide
    path sits on a plateau for hundreds of steps before it is used; from this one it is learnt in ~40.
    """
    model, processor = tiny_model_and_processor(seed=seed, text_overrides={"initializer_range": 0.1})
    conversations = {lesion: [{"from": "human", "value": f"<image>\n{QUESTION}"}, {"from": "gpt", "value": answer}]
                     for lesion, answer in ANSWERS.items()}
    encoded = {lesion: processor.encode_conversation(turns) for lesion, turns in conversations.items()}
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.0)
    rng = np.random.default_rng(seed)
    losses: list[float] = []
    model.train()
    while len(losses) < max_steps and (len(losses) < 10 or np.mean(losses[-10:]) >= target_loss):
        lesions = [bool(v) for v in rng.integers(0, 2, size=batch_size)]
        slides = [make_region_slide(int(rng.integers(1 << 30)), lesion, amplitude=amplitude) for lesion in lesions]
        batch = processor.collate([encoded[lesion] for lesion in lesions])
        features = torch.cat([s.inputs.tile_features for s in slides])          # [B, N, D]
        coords = torch.cat([s.inputs.coords_tiling_px for s in slides])         # [B, N, 2]
        loss = model(**batch, tile_features=features, coords_tiling_px=coords).loss
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(float(loss.detach()))
        if log is not None:
            log(len(losses), losses[-1])
    model.zero_grad(set_to_none=True)
    return model.eval(), processor, len(losses)


def deletion_experiment(model, processor, slide: RegionSlide, evidence, draws: int = 20, fraction: float = 0.1,
                        seed: int = 0) -> dict:
    """Drops of the answer's log-likelihood (nats) when tiles become the slide's mean tile: the top
    `fraction` by relevance, `draws` random sets of the same size, and the lesion itself; plus the share
    of the lesion's tiles among the top ones (recall)."""
    features = slide.inputs.tile_features

    def drop(indices) -> float:
        masked = answer_log_likelihood(model, processor, slide.inputs, [], QUESTION, slide.answer,
                                       replace_tiles(features, indices))
        return evidence.answer_log_likelihood - masked

    top = evidence.top_tiles(fraction)
    rng = np.random.default_rng(seed)
    count = features.shape[1]
    return {"tiles": count, "masked": len(top), "lesion_tiles": len(slide.region),
            "answer_log_likelihood": evidence.answer_log_likelihood, "top_drop": drop(top),
            "random_drops": [drop(rng.choice(count, len(top), replace=False)) for _ in range(draws)],
            "lesion_drop": drop(slide.region), "lesion_recall": float(np.isin(slide.region, top).mean()),
            "completeness_gap": evidence.completeness_gap, "method": evidence.method}
