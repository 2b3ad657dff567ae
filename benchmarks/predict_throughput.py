"""`evaluate predict` throughput: items/s one at a time (today's loop) vs batched, at several batch sizes. JSON.

Items are WSI-Bench-like questions about --slides random released-style slide-token files (576 x 1024,
zero beyond 768), answered with the official settings (sampling at 0.2, no_repeat_ngram_size 3, seed 0)
and --max-new-tokens; EOS is suppressed so every answer is exactly that long and both paths do the same
work (random weights would stop at random places otherwise).

- one at a time: what `evaluate predict --batch-size 1` does: one `SlideChatSession` per slide (its prompt
  prefix cached once), each question answered alone;
- batched: `modeling.batch_generation.generate_batch` over consecutive items, --batch-sizes (one
  left-padded generate per batch, slides mixed), as `evaluate predict --batch-size N`.

Each figure is the median of --repeats runs (items / seconds); `equal_to_one_at_a_time` says whether the
batched answers were token for token those of the one-at-a-time run (float32 on CPU: they are; float16
on a GPU, batched matrix products may round differently and a few answers can drift).
Models (random weights, nothing downloaded): --model tiny (the demo's 2-layer 64-d LLaMA, CPU) or 7b
(Vicuna-7B's shape in float16, CUDA). Goals: >= 3x at batch 16 on CPU, >= 10x at batch 32 on a GPU.

Run: `python benchmarks/predict_throughput.py [--model tiny|7b] [--batch-sizes 1 8 16 32] [--items 32]`
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

QUESTIONS = [
    "What is the histological type of this tumor?",
    "How would you grade this tumor?",
    "Describe the global morphology of the slide, including the tissue architecture, the cellular morphology and "
    "any infiltration of surrounding structures.",
    "What is the TNM stage?",
    "Is there lymphovascular invasion?",
    "What treatment would you recommend for this patient, given the morphology seen on the slide?",
    "Which molecular subtype is most likely?",
    "Give the likely diagnosis and the key features that support it.",
]


def make_requests(n_items: int, n_slides: int, seed: int = 0) -> list:
    """Item i asks QUESTIONS[i % 8] about slide i % n_slides (released-style tokens, 768 real channels)."""
    from modeling.batch_generation import BatchRequest
    from modeling.slide_inputs import SLIDE_TOKENS, SlideInputs

    generator = torch.Generator().manual_seed(seed)
    slides = []
    for index in range(n_slides):
        tokens = torch.zeros(1, 576, 1024)
        tokens[..., :768] = torch.randn(1, 576, 768, generator=generator)
        slides.append(SlideInputs(SLIDE_TOKENS, f"random-slide-{index}", slide_tokens=tokens))
    return [BatchRequest(slides[i % n_slides], QUESTIONS[i % len(QUESTIONS)]) for i in range(n_items)]


def _sync(model) -> None:
    if model.get_input_embeddings().weight.device.type == "cuda":
        torch.cuda.synchronize()


def one_at_a_time(model, processor, requests, settings) -> tuple[float, list[list[int]]]:
    """Seconds and generated ids, as `evaluate predict --batch-size 1` answers (one session per slide)."""
    from modeling.inference import SlideChatSession

    by_slide: dict[int, list[int]] = {}
    for index, request in enumerate(requests):
        by_slide.setdefault(id(request.slide_inputs), []).append(index)
    ids: list = [None] * len(requests)
    _sync(model)
    started = time.perf_counter()
    for indices in by_slide.values():
        session = SlideChatSession(model, processor, requests[indices[0]].slide_inputs, settings)
        for index in indices:
            session.history = []
            ids[index] = session.generate_answer(requests[index].question)[0]
    _sync(model)
    return time.perf_counter() - started, ids


def batched(model, processor, requests, settings, batch_size: int) -> tuple[float, list[list[int]]]:
    from modeling.batch_generation import generate_batch

    ids = []
    _sync(model)
    started = time.perf_counter()
    for start in range(0, len(requests), batch_size):
        ids += [answer.token_ids for answer in generate_batch(model, processor, requests[start:start + batch_size],
                                                               settings)]
    _sync(model)
    return time.perf_counter() - started, ids


def _count(batch_size: int, items: int, serial_items: int) -> int:
    """Items per batched run: a multiple of the batch size (batch 1: as many as one at a time)."""
    return serial_items if batch_size == 1 else max(batch_size, items // batch_size * batch_size)


def measure(model, processor, *, batch_sizes, items: int, serial_items: int, slides: int, max_new_tokens: int,
            repeats: int) -> dict:
    """items/s (medians) one at a time and at each batch size, speed-ups and answer equality."""
    from modeling.generation_settings import GenerationSettings

    settings = GenerationSettings(seed=0, max_new_tokens=max_new_tokens)
    requests = make_requests(max(items, max(batch_sizes)), slides)
    serial_requests = requests[:serial_items]
    batched(model, processor, requests[:2], settings, 2)                                  # warm-up
    serial_s, serial_ids = [], None
    runs: dict[int, list[float]] = {size: [] for size in batch_sizes}
    equal: dict[int, float] = {}
    for _ in range(repeats):                    # interleaved: load from other processes hits all alike
        seconds, serial_ids = one_at_a_time(model, processor, serial_requests, settings)
        serial_s.append(seconds)
        for size in batch_sizes:
            count = _count(size, items, serial_items)
            seconds, ids = batched(model, processor, requests[:count], settings, size)
            runs[size].append(count / seconds)
            same = [a == b for a, b in zip(ids[:len(serial_ids)], serial_ids)]
            equal[size] = round(sum(same) / len(same), 3)
    serial_rate = statistics.median(len(serial_requests) / s for s in serial_s)
    rates = {f"batch_{size}": round(statistics.median(values), 3) for size, values in runs.items()}
    return {"items_per_s": {"one_at_a_time": round(serial_rate, 3), **rates},
            "speedup_vs_one_at_a_time": {key: round(rate / serial_rate, 2) for key, rate in rates.items()},
            "equal_to_one_at_a_time": {f"batch_{size}": value for size, value in equal.items()},
            "tokens_per_answer": max_new_tokens, "items": {"one_at_a_time": len(serial_requests),
                                                           **{f"batch_{s}": _count(s, items, serial_items) for s in runs}},
            "seconds_one_at_a_time_runs": [round(s, 2) for s in serial_s]}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("tiny", "7b"), default="7b" if torch.cuda.is_available() else "tiny")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 16, 32])
    parser.add_argument("--items", type=int, default=32, help="items per batched measurement (a multiple of each size)")
    parser.add_argument("--serial-items", type=int, default=8, help="items answered one at a time per repeat")
    parser.add_argument("--slides", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's); 1 avoids waiting on "
                                                    "descheduled OpenMP threads on a shared, overloaded machine")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    from benchmarks.gpu_shapes import TINY_LLM, VICUNA_7B, wsi_llava_model

    device = torch.device(args.device)
    dtype = torch.float16 if args.model == "7b" else torch.float32
    model, processor = wsi_llava_model(VICUNA_7B if args.model == "7b" else TINY_LLM, device, dtype)
    result = {"benchmark": "predict_throughput", "model": args.model, "dtype": str(dtype).removeprefix("torch."),
              "settings": "official (sampling at 0.2, no_repeat_ngram_size 3, seed 0), EOS suppressed",
              **measure(model, processor, batch_sizes=args.batch_sizes, items=args.items,
                        serial_items=args.serial_items, slides=args.slides, max_new_tokens=args.max_new_tokens,
                        repeats=args.repeats),
              "goal": ">= 3x at batch 16 on CPU; >= 10x at batch 32 on a GPU",
              "machine": {"cpus": os.cpu_count(), "load_average_1m_5m_15m": [round(v, 2) for v in os.getloadavg()],
                          "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
                          "torch": torch.__version__, "device": str(device),
                          "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None}}
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
