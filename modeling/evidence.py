"""Evidence heatmaps: how much each tile of a slide supports one answer of the chat.

    evidence = explain_answer(model, processor, slide_inputs, history, question, answer, progress=report)
    evidence.relevance          # [N] nats, one per tile, aligned with evidence.layout.coords_level0
    evidence.answer_log_likelihood

What is attributed: the answer's log-likelihood log p(answer | slide, conversation), teacher-forced,
over the answer's tokens only, under exactly the prompt the chat used (`WsiLlavaProcessor.build_prompt`
of the earlier turns + the question, tokenized like `SlideChatSession`; the answer text tokenized on
its own, as generation emits it after "ASSISTANT:"; no closing "</s>").

To what: the tile features [N, D], through everything the model does with them (LongNet slide
encoder, pooling to 576 tokens, projector, language model).

Method: integrated gradients from the slide's mean tile (default; `modeling.evidence_methods` has
the details, the adaptive path integral and the faster "grad_x_input" option). relevance_i =
sum_d (x_id - b_d) * (the path integral of dL/dx_id), with x_i tile i's features and b the slide's
mean tile feature; the scores add up to L(slide) - L(every tile = the mean tile), in nats; positive =
the tile supports the answer, negative = it speaks against it. Why this one:
- It attributes through the whole path and needs gradients with respect to the inputs only
  (parameters are frozen for the call; no parameter gradient is ever stored), so it runs with the
  4-bit language model on CUDA (bitsandbytes' 4-bit matmul passes gradients to its input, as QLoRA
  relies on; on CPU see `modeling.bnb_input_gradients`) and in full precision on CPU. Cost: about
  9-21 forward passes (the path scan) and 16 forward+backward passes of the whole model per answer,
  one slide-encoder pass each; "grad_x_input" needs 2 and 1.
- Attention maps would not do: LongNet's dilated attention mixes tiles before the sequence is pooled to
  576 tokens, so the LLM's attention to slide tokens says little about individual tiles.
- Plain gradient x input (one backward pass) is offered but not the default: it is blind where the
  model is saturated (the LayerNorms on every tile token and on the pooled tokens, and a confident
  answer, flatten the gradient at the real slide). On the test suite's trained models
  (benchmarks/evidence_deletion.py, 3 models x 5 slides) it met the deletion test's criteria in 5 of
  15 cases (median: masking its top 10 % cost 0.1 % of what masking the lesion costs; 47 % of the
  lesion's tiles among them), integrated gradients in 14 of 15 (98 % of the lesion's tiles, and the
  full cost of masking the lesion).
- Signed and summed over feature dimensions (that sum is what completeness adds up), because the sign
  carries meaning (evidence for vs. against); absolute values would merge the two.
- The baseline is the slide's mean tile, not zero: tile-encoder features are not centred, so a zero
  vector is far from anything the model saw; the mean tile is "a typical tile of this slide". The
  deletion test masks with the same baseline, so the scores are tested on what they estimate.
Limits: attributions explain the model, not the pathology; evidence spread over many redundant tiles
is shared among them; a lesion that covers most of the slide pulls the mean tile towards itself (then
the baseline is less neutral and the scores smaller). Occlusion (one forward pass per tile) is not
offered: thousands of forward passes of a 7B model per answer. Relevance is raw nats; `normalized()`
divides by the largest |relevance| for display.

Slide tokens as released with WSI-Bench (576 pooled tokens, no tile positions) get `NoHeatmapError`.
One call at a time per model: the call switches the model to eval mode and freezes its parameters,
restoring both afterwards.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch

from modeling.bnb_input_gradients import input_gradients_through_4bit
from modeling.errors import ModelError
from modeling.evidence_methods import METHODS, EvidenceSettings
from modeling.slide.tile_layout import TileLayout
from modeling.slide_inputs import SLIDE_TOKENS, SlideInputs, check_compatible

Progress = Callable[[float, str], None]
BASELINE = "slide_mean_tile"
RELEASED_TOKENS_MESSAGE = ("no heatmap can be drawn for released slide tokens: they are 576 pooled tokens without "
                           "tile positions; upload the slide (or its tile features h5) instead")


class NoHeatmapError(ModelError):
    """The inputs have no tiles to attribute to (released slide tokens, or features without positions)."""


@dataclass
class TileEvidence:
    layout: TileLayout                  # slide id, level-0 tile origins [N, 2], tile size at level 0
    relevance: np.ndarray               # [N] float64, nats (see the module docstring)
    method: str
    method_version: int
    baseline: str
    answer_log_likelihood: float        # nats, summed over the answer's tokens
    baseline_log_likelihood: float      # the same answer on the slide with every tile = the mean tile
    completeness_gap: float             # sum(relevance) - (answer - baseline log-likelihood); 0 = resolved
    answer_num_tokens: int
    question: str
    answer: str
    source: str
    passes: dict[str, int] = field(default_factory=dict)       # forward / forward_backward passes run
    timings_s: dict[str, float] = field(default_factory=dict)

    @property
    def slide_id(self) -> str:
        return self.layout.slide_id

    def normalized(self) -> np.ndarray:
        """relevance / max |relevance| in [-1, 1] (all zeros stay zeros)."""
        peak = float(np.abs(self.relevance).max())
        return self.relevance / peak if peak > 0 else np.zeros_like(self.relevance)

    def top_tiles(self, fraction: float) -> np.ndarray:
        """Indices of the ceil(fraction * N) most relevant tiles, most relevant first."""
        count = max(1, math.ceil(fraction * len(self.relevance)))
        return np.argsort(-self.relevance, kind="stable")[:count]

    def summary(self) -> dict:
        """JSON-safe provenance (no per-tile arrays)."""
        return {"slide_id": self.slide_id, "source": self.source, "method": self.method,
                "method_version": self.method_version, "baseline": self.baseline, "relevance_unit": "nats",
                "answer_log_likelihood": self.answer_log_likelihood,
                "baseline_log_likelihood": self.baseline_log_likelihood, "completeness_gap": self.completeness_gap,
                "answer_num_tokens": self.answer_num_tokens, "question": self.question, "answer": self.answer,
                "num_tiles": len(self.relevance), "passes": dict(self.passes), "timings_s": dict(self.timings_s)}


# -- the scored quantity ---------------------------------------------------------------------------------
def answer_token_ids(processor, history: Sequence[tuple[str, str]], question: str,
                     answer: str, template: str | None = None) -> tuple[list[int], list[int]]:
    """(prompt ids as the chat built them with prompt `template`, default the processor's generation
    template; answer ids); ModelError for an empty answer."""
    answer_ids = list(processor.tokenizer(answer.strip(), add_special_tokens=False)["input_ids"]) if answer else []
    if not answer_ids:
        raise ModelError("the answer is empty: there is nothing to attribute; ask again or give the answer text.")
    prompt_ids, _ = processor.tokenize(processor.build_prompt(question, list(history), template=template))
    return prompt_ids, answer_ids


class _AnswerScorer:
    """L(features) = log p(answer | prompt, slide with these tile features), a scalar tensor."""

    def __init__(self, model, processor, inputs: SlideInputs, history, question: str, answer: str,
                 template: str | None = None):
        if inputs.kind == SLIDE_TOKENS:
            raise NoHeatmapError(RELEASED_TOKENS_MESSAGE)
        self.model = model
        self.device = model.get_input_embeddings().weight.device
        prompt_ids, answer_ids = answer_token_ids(processor, history, question, answer, template)
        self.input_ids = torch.tensor([prompt_ids + answer_ids[:-1]], device=self.device)   # [1, L]
        self.targets = torch.tensor(answer_ids, device=self.device)                          # [A]
        self.coords = inputs.coords_tiling_px.to(self.device)                                # [1, N, 2]

    def __call__(self, tile_features: torch.Tensor) -> torch.Tensor:
        out = self.model(input_ids=self.input_ids, attention_mask=torch.ones_like(self.input_ids),
                         tile_features=tile_features, coords_tiling_px=self.coords, use_cache=False,
                         logits_to_keep=len(self.targets))
        logits = out.logits[0].float()                                        # [A, V]: predicts answer tokens
        return torch.log_softmax(logits, dim=-1).gather(1, self.targets[:, None]).sum()


@contextlib.contextmanager
def _input_gradients_only(model):
    """Eval mode, autograd on (also inside inference_mode), no parameter gradients, 4-bit layers that pass
    gradients on (`modeling.bnb_input_gradients`); all restored afterwards."""
    frozen = [p for p in model.parameters() if p.requires_grad]
    was_training = model.training
    for parameter in frozen:
        parameter.requires_grad_(False)
    model.eval()
    try:
        with torch.inference_mode(False), torch.enable_grad(), input_gradients_through_4bit(model):
            yield
    finally:
        for parameter in frozen:
            parameter.requires_grad_(True)
        model.train(was_training)


def _tile_features(inputs: SlideInputs, device) -> torch.Tensor:
    return inputs.tile_features.detach().to(device=device, dtype=torch.float32).clone()      # [1, N, D]


def mean_tile_baseline(tile_features: torch.Tensor) -> torch.Tensor:
    """The baseline every method is defined against: the slide's mean tile feature [1, 1, D]."""
    return tile_features.mean(dim=1, keepdim=True).detach()


def replace_tiles(tile_features: torch.Tensor, indices) -> torch.Tensor:
    """A copy of [1, N, D] features with the tiles at `indices` replaced by the slide's mean tile (the
    deletion the relevance scores estimate)."""
    masked = tile_features.clone()
    masked[:, torch.as_tensor(indices, dtype=torch.long)] = mean_tile_baseline(tile_features).to(masked.dtype)
    return masked


# -- the API -------------------------------------------------------------------------------------------
def check_explainable(inputs: SlideInputs) -> TileLayout:
    """The inputs' tile layout; NoHeatmapError (with the plain reason) when there is none."""
    if inputs.kind == SLIDE_TOKENS:
        raise NoHeatmapError(RELEASED_TOKENS_MESSAGE)
    if inputs.layout is None:
        raise NoHeatmapError(f"no heatmap can be drawn for {inputs.source}: its tile features come without level-0 "
                             "tile positions; load them from a features h5 or the slide (load_slide_inputs, "
                             "from_extracted) so the tiles can be placed on the slide.")
    count = inputs.tile_features.shape[1]
    if len(inputs.layout) != count:
        raise ModelError(f"{inputs.source}: {len(inputs.layout)} tile positions for {count} tile features.")
    return inputs.layout


def explain_answer(model, processor, slide_inputs: SlideInputs, history: Sequence[tuple[str, str]],
                   question: str, answer: str, progress: Progress | None = None,
                   settings: EvidenceSettings | None = None, template: str | None = None) -> TileEvidence:
    """Per-tile relevance of `answer` (to `question`, after the `history` turns, in the chat's prompt
    `template`: give the one the answer was generated with, default the processor's) on this slide."""
    settings = settings or EvidenceSettings()
    report = progress or (lambda fraction, message: None)
    layout = check_explainable(slide_inputs)
    check_compatible(slide_inputs, model.config)
    started = time.perf_counter()
    report(0.0, f"attributing the answer to {len(layout)} tiles ({settings.method})")
    method = METHODS[settings.method]
    with _input_gradients_only(model):
        scorer = _AnswerScorer(model, processor, slide_inputs, history, question, answer, template)
        features = _tile_features(slide_inputs, scorer.device)
        result = method.run(scorer, features, mean_tile_baseline(features), settings, report)
    relevance = result.relevance.detach().double().cpu().numpy()
    if not np.isfinite(relevance).all() or not math.isfinite(result.log_likelihood):
        raise ModelError(f"{slide_inputs.source}: the relevance scores are not finite (numerical overflow in "
                         f"{model.config.name_for_display}); try the full-precision model.")
    elapsed = time.perf_counter() - started
    report(1.0, f"relevance of {len(relevance)} tiles in {elapsed:.1f} s")
    return TileEvidence(layout, relevance, method.name, method.version, BASELINE, result.log_likelihood,
                        result.baseline_log_likelihood, result.completeness_gap, len(scorer.targets), question,
                        answer, slide_inputs.source, result.passes, {"total": elapsed})


def answer_log_likelihood(model, processor, slide_inputs: SlideInputs, history: Sequence[tuple[str, str]],
                          question: str, answer: str, tile_features: torch.Tensor | None = None,
                          template: str | None = None) -> float:
    """log p(answer | ...) in nats, as `explain_answer` scores it; `tile_features` [1, N, D] replace the
    inputs' own (e.g. `replace_tiles(...)` for a deletion test)."""
    check_compatible(slide_inputs, model.config)
    scorer = _AnswerScorer(model, processor, slide_inputs, history, question, answer, template)
    features = _tile_features(slide_inputs, scorer.device) if tile_features is None else tile_features
    with torch.inference_mode():
        return float(scorer(features.to(scorer.device)))
