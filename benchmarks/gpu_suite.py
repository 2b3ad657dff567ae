"""The GPU suite: one command, random weights of the real shapes (nothing downloaded), one JSON document.

    python benchmarks/gpu_suite.py > gpu-suite.json          # CUDA; budget 8 minutes on one H200
    python benchmarks/gpu_suite.py --tiny                     # the same code paths on the CPU, toy shapes

Sections (each timed; one that cannot run says why, e.g. no flash-attn, and the rest still run; a section
is skipped, with its reason, when the time left in --budget-s is below its estimate):
- tile_encoder: Prov-GigaPath's tile encoder shape (timm vit_giant_patch14_dinov2 as its hub config: 224 px,
  patch 16, 1536-d, 40 blocks, 1.13 B parameters) in bf16: tiles/s over preloaded batches and model FLOPs
  utilisation (FLOPs counted by torch's FlopCounterMode / time / the GPU's dense bf16 peak; goal >= 40%),
  then `extract_slide_features` reading JPEG tiles from a synthetic Aperio slide with CPU DataLoader
  workers (goal: pipeline >= 0.9 of the encoder alone);
- slide_encoder: the LongNet slide encoder (Prov-GigaPath's gigapath_slide_enc12l768d, float16, attention
  backend "auto": flash-attn when installed, else torch's fused SDPA) on 10k / 32k / 64k tiles: seconds and
  peak memory (goal: linear in tiles, 64k tiles under 24 GB);
- language_model_fp16 / language_model_nf4: Vicuna-7B's shape through WsiLlavaForConditionalGeneration in
  float16, then quantised in place to nf4 (bitsandbytes, as --load-4bit): weight memory, prefill of 576 slide
  tokens + a question, decode tokens/s, time to first token of turn 1 and of turn 2 with the slide prefix
  cached (`SlideChatSession`; goal: turn 2 / turn 1 <= 0.3);
- evaluate_predict: `benchmarks/predict_throughput.measure` on the float16 model: items/s one at a time vs
  batched (goal >= 10x at batch 32);
- cuda_tests: the CUDA-only tests (`CUDA_TESTS`, skipped on CPU machines) run by pytest in a subprocess;
  with --tiny they are only collected (so their names cannot rot).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from benchmarks import gpu_shapes  # noqa: E402

CUDA_TESTS = ("tests/model/test_slide_encoder.py::test_cuda_fused_attention_matches_cpu_math",)
QUESTION_1, QUESTION_2 = "What is the histological type of this tumor?", "And what is its grade?"


@dataclass
class Shapes:
    """What each section runs: `FULL` on a GPU, `TINY` on the CPU in seconds."""
    tile_batch: int
    tile_batches: int
    pipeline_tiles: int
    pipeline_workers: int
    slide_tiles: tuple[int, ...]
    slide_encoder: dict            # SlideEncoderConfig overrides
    llm: dict                      # gpu_shapes text config
    decode_tokens: int
    predict: dict                  # predict_throughput.measure arguments
    estimates_s: dict = field(default_factory=dict)


FULL = Shapes(tile_batch=256, tile_batches=12, pipeline_tiles=4096, pipeline_workers=max(1, (os.cpu_count() or 2) - 1),
              slide_tiles=(10_000, 32_768, 65_536), slide_encoder={}, llm=gpu_shapes.VICUNA_7B, decode_tokens=128,
              predict={"batch_sizes": [1, 8, 32], "items": 32, "serial_items": 8, "slides": 4, "max_new_tokens": 32,
                       "repeats": 2},
              estimates_s={"tile_encoder": 60, "slide_encoder": 45, "language_model_fp16": 45, "evaluate_predict": 90,
                           "language_model_nf4": 45, "cuda_tests": 40})
TINY = Shapes(tile_batch=4, tile_batches=2, pipeline_tiles=8, pipeline_workers=1, slide_tiles=(100, 320, 640),
              slide_encoder={"in_dim": 16, "embed_dim": 32, "depth": 1, "num_heads": 4, "segment_lengths": (64, 256),
                             "dilated_ratios": (1, 2)},
              llm=gpu_shapes.TINY_LLM, decode_tokens=8,
              predict={"batch_sizes": [1, 4], "items": 4, "serial_items": 2, "slides": 2, "max_new_tokens": 4,
                       "repeats": 1})


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds(fn, device: torch.device, repeats: int) -> float:
    """Median wall time of `fn()` over `repeats` calls (synchronised)."""
    times = []
    for _ in range(repeats):
        sync(device)
        started = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def gib(n_bytes: float | None) -> float | None:
    return None if n_bytes is None else round(n_bytes / 2**30, 3)


# -- sections ---------------------------------------------------------------------------------------------
def tile_encoder(ctx: "Suite") -> dict:
    from torch.utils.flop_counter import FlopCounterMode

    shapes, device = ctx.shapes, ctx.device
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    encoder = gpu_shapes.gigapath_tile_model(ctx.tiny, device, dtype)
    batch = torch.randn(shapes.tile_batch, 3, 224, 224, device=device, dtype=dtype)
    with torch.inference_mode():
        with FlopCounterMode(display=False) as counter:
            encoder.model(batch[:1])
        flops_per_tile = counter.get_total_flops()
        encoder.model(batch)                                                   # warm-up
        alone_s = ctx.seconds(lambda: [encoder.model(batch) for _ in range(shapes.tile_batches)])
    alone = shapes.tile_batch * shapes.tile_batches / alone_s
    peak, peak_source = ctx.peak_tflops()
    achieved = flops_per_tile * alone / 1e12
    pipeline = _tile_pipeline(ctx, encoder, dtype)
    return {"model": "timm vit_giant_patch14_dinov2, Prov-GigaPath hub config" + (" (TINY widths)" if ctx.tiny else ""),
            "parameters_b": round(sum(p.numel() for p in encoder.model.parameters()) / 1e9, 4),
            "dtype": str(dtype).removeprefix("torch."), "batch_size": shapes.tile_batch,
            "gflops_per_tile": round(flops_per_tile / 1e9, 3), "tiles_per_s_encoder_alone": round(alone, 1),
            "achieved_tflops": round(achieved, 2), "peak_dense_bf16_tflops": peak, "peak_source": peak_source,
            "mfu": None if peak is None else round(achieved / peak, 3), "goal_mfu": 0.4, **pipeline,
            "pipeline_over_encoder_alone": round(pipeline["tiles_per_s_pipeline"] / alone, 3), "goal_ratio": 0.9}


def _tile_pipeline(ctx: "Suite", encoder, dtype: torch.dtype) -> dict:
    import numpy as np

    from modeling.slide.features import extract_slide_features
    from modeling.slide.reader import open_slide
    from modeling.slide.tiling import tile_slide

    shapes = ctx.shapes
    amp = {torch.bfloat16: "bfloat16", torch.float16: "float16"}.get(dtype, "none")
    with open_slide(_slide(ctx)) as slide:
        tiling = tile_slide(slide)
        tiling.coords_level0 = np.resize(tiling.coords_level0, (shapes.pipeline_tiles, 2))   # the slide's tiles, repeated
        tiling.tissue_fraction = np.resize(tiling.tissue_fraction, shapes.pipeline_tiles)

        def run():
            extract_slide_features(slide, encoder, coords=tiling, batch_size=shapes.tile_batch,
                                   num_workers=shapes.pipeline_workers, device=str(ctx.device), amp_dtype=amp)
        took = ctx.seconds(run, 2)
    return {"pipeline_tiles": shapes.pipeline_tiles, "pipeline_workers": shapes.pipeline_workers,
            "tiles_per_s_pipeline": round(shapes.pipeline_tiles / took, 1)}


def _slide(ctx: "Suite") -> Path:
    """feature_throughput's 8192 px synthetic Aperio slide (0.5 um/px, JPEG tiles); a 1024 px one with --tiny."""
    from benchmarks.feature_throughput import make_slide
    from tests.helpers.synthetic_slides import Blob, write_aperio_slide

    if not ctx.tiny:
        return make_slide(ctx.workdir)
    path = ctx.workdir / "gpu-suite-tiny-1024px-0.5mpp-v1.svs"
    if not path.is_file():
        ctx.workdir.mkdir(parents=True, exist_ok=True)
        write_aperio_slide(path, width=1024, height=1024, mpp=0.5, downsamples=(1, 4), blobs=[Blob(512, 512, 450, 420)],
                           debris=[])
    return path


def slide_encoder(ctx: "Suite") -> dict:
    from modeling.dilated_attention import resolve_backend
    from modeling.slide_encoder import LongNetSlideEncoder, SlideEncoderConfig

    device = ctx.device
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    config = SlideEncoderConfig(**ctx.shapes.slide_encoder)
    torch.manual_seed(0)
    with torch.device(device), gpu_shapes.default_dtype(dtype):
        model = LongNetSlideEncoder(config).eval()
    weights = torch.cuda.memory_allocated(device) if device.type == "cuda" else None
    rows = []
    for n_tiles in ctx.shapes.slide_tiles:
        side = int(n_tiles ** 0.5) + 1
        cells = torch.randperm(side * side)[:n_tiles]
        coords = (torch.stack([cells // side, cells % side], dim=-1).float() * 256).unsqueeze(0).to(device)
        features = torch.randn(1, n_tiles, config.in_dim, device=device, dtype=dtype)
        with torch.inference_mode():
            model(features[:, :64], coords[:, :64])                                   # warm-up
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            took = ctx.seconds(lambda: model(features, coords), 2)
        peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
        rows.append({"tiles": n_tiles, "seconds": round(took, 3), "ms_per_1k_tiles": round(1e6 * took / n_tiles, 2),
                     "peak_gib": gib(peak), "peak_above_weights_gib": gib(None if peak is None else peak - weights)})
    first, last = rows[0], rows[-1]
    return {"config": "gigapath_slide_enc12l768d" if not ctx.shapes.slide_encoder else config.to_dict(),
            "dtype": str(dtype).removeprefix("torch."), "attention_backend": resolve_backend("auto", device, dtype),
            "runs": rows, "time_growth_over_tile_growth": round((last["seconds"] / first["seconds"]) /
                                                                (last["tiles"] / first["tiles"]), 3),
            "goal": "linear in tiles (growth ratio ~1); 64k tiles under 24 GB",
            "peak_memory_note": None if device.type == "cuda" else "peak memory is measured on CUDA only"}


def _llm_figures(ctx: "Suite", model, processor) -> dict:
    from modeling.generation_settings import GenerationSettings
    from modeling.inference import SlideChatSession
    from benchmarks.predict_throughput import make_requests

    device, new_tokens = ctx.device, ctx.shapes.decode_tokens
    inputs = make_requests(1, 1)[0].slide_inputs
    one = GenerationSettings(seed=0, max_new_tokens=1)
    many = GenerationSettings(seed=0, max_new_tokens=new_tokens)
    prompt = processor.encode_prompt(QUESTION_1)
    with torch.inference_mode():
        prefill = ctx.seconds(lambda: model(**{k: v.to(device) for k, v in prompt.items()},
                                            **inputs.model_kwargs(device), use_cache=True))
    turn1 = ctx.seconds(lambda: SlideChatSession(model, processor, inputs, one).ask(QUESTION_1))
    session = SlideChatSession(model, processor, inputs, many)
    session.prepare()                                       # the slide prefix, cached from here on

    def ask(history, question, settings):
        session.history = list(history)
        return session.generate_answer(question, settings)[1]
    first_token = ctx.seconds(lambda: ask([], QUESTION_1, one))
    full = ctx.seconds(lambda: ask([], QUESTION_1, many), 1)
    answer = ask([], QUESTION_1, many)
    turn2 = ctx.seconds(lambda: ask([(QUESTION_1, answer)], QUESTION_2, one))
    return {"prompt_tokens": int(prompt["input_ids"].shape[1]), "prefill_s": round(prefill, 4),
            "decode_tokens_per_s": round((new_tokens - 1) / max(full - first_token, 1e-9), 1),
            "ttft_turn1_s": round(turn1, 4), "ttft_turn2_cached_prefix_s": round(turn2, 4),
            "turn2_over_turn1": round(turn2 / turn1, 3), "goal_turn2_over_turn1": 0.3}


def _weights(ctx: "Suite", model) -> dict:
    gc.collect()
    allocated = None
    if ctx.device.type == "cuda":
        torch.cuda.empty_cache()
        allocated = torch.cuda.memory_allocated(ctx.device)
    return {"language_model_tensor_gib": gib(gpu_shapes.tensor_bytes(model.language_model)),
            "cuda_allocated_gib": gib(allocated)}


def language_model_fp16(ctx: "Suite") -> dict:
    dtype = torch.float16 if ctx.device.type == "cuda" else torch.float32
    ctx.llm = gpu_shapes.wsi_llava_model(ctx.shapes.llm, ctx.device, dtype)
    model, processor = ctx.llm
    return {"shape": "Vicuna-7B" if not ctx.tiny else "TINY LLaMA", "dtype": str(dtype).removeprefix("torch."),
            "parameters_b": round(sum(p.numel() for p in model.parameters()) / 1e9, 3), **_weights(ctx, model),
            **_llm_figures(ctx, model, processor)}


def evaluate_predict(ctx: "Suite") -> dict:
    from benchmarks.predict_throughput import measure

    if ctx.llm is None:
        return {"status": "skipped", "reason": "language_model_fp16 did not build the model"}
    return measure(*ctx.llm, **ctx.shapes.predict)


def language_model_nf4(ctx: "Suite") -> dict:
    if ctx.llm is None:
        return {"status": "skipped", "reason": "language_model_fp16 did not build the model"}
    model, processor = ctx.llm
    converted = gpu_shapes.quantize_nf4(model)
    return {"quantization": "bitsandbytes nf4, double quantisation, lm_head kept", "linear_layers_4bit": converted,
            **_weights(ctx, model), **_llm_figures(ctx, model, processor)}


def cuda_tests(ctx: "Suite") -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "junit.xml"
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *CUDA_TESTS]
        command += ["--collect-only"] if ctx.tiny else ["-p", "no:xdist", f"--junitxml={report}"]
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
        if ctx.tiny:
            collected = [line for line in done.stdout.splitlines() if "::" in line]
            return {"mode": "collected only (no CUDA run with --tiny)", "collected": collected,
                    "exit_code": done.returncode, "ok": done.returncode == 0 and bool(collected)}
        suite = ET.parse(report).getroot()
        suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
        counts = {key: int(suite.get(key, 0)) for key in ("tests", "failures", "errors", "skipped")}
    return {"mode": "run", **counts, "passed": counts["tests"] - counts["failures"] - counts["errors"]
            - counts["skipped"], "exit_code": done.returncode, "ok": done.returncode == 0 and not counts["skipped"],
            "output_tail": done.stdout[-1500:]}


SECTIONS = {"tile_encoder": tile_encoder, "slide_encoder": slide_encoder, "language_model_fp16": language_model_fp16,
            "evaluate_predict": evaluate_predict, "language_model_nf4": language_model_nf4, "cuda_tests": cuda_tests}


@dataclass
class Suite:
    tiny: bool
    device: torch.device
    shapes: Shapes
    budget_s: float
    workdir: Path
    peak_override: float | None = None
    llm: tuple | None = None
    started: float = field(default_factory=time.monotonic)

    def seconds(self, fn, repeats: int = 3) -> float:
        """Median seconds of `fn()` over `repeats` calls; once with --tiny (the figures mean nothing there)."""
        return seconds(fn, self.device, 1 if self.tiny else repeats)

    def peak_tflops(self) -> tuple[float | None, str]:
        if self.peak_override:
            return self.peak_override, "--peak-tflops"
        return gpu_shapes.peak_tflops(self.device)

    def run(self, names) -> dict:
        results = {}
        for name in names:
            left = self.budget_s - (time.monotonic() - self.started)
            estimate = self.shapes.estimates_s.get(name, 0)
            if left < estimate:
                results[name] = {"status": "skipped", "reason": f"{left:.0f} s of the budget left, the section "
                                                                  f"needs about {estimate} s"}
                continue
            began = time.monotonic()
            try:
                body = SECTIONS[name](self)
                results[name] = {"status": body.pop("status", "ok"), **body}
            except Exception as exc:  # one section's failure must not lose the others' figures
                results[name] = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
            results[name]["seconds"] = round(time.monotonic() - began, 2)
        return results


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="toy shapes on the CPU (seconds): the suite's test")
    parser.add_argument("--device", default=None, help="default: cuda (cpu with --tiny)")
    parser.add_argument("--sections", nargs="+", choices=tuple(SECTIONS), default=list(SECTIONS))
    parser.add_argument("--budget-s", type=float, default=480.0, help="skip sections that would not fit (8 min)")
    parser.add_argument("--peak-tflops", type=float, help="dense bf16 peak of a GPU missing from the table")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "wsi-llava-bench")
    args = parser.parse_args(argv)
    device = torch.device(args.device or ("cpu" if args.tiny else "cuda"))
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("gpu_suite: no CUDA device; run with --tiny for the CPU check")
    suite = Suite(args.tiny, device, TINY if args.tiny else FULL, args.budget_s, args.workdir, args.peak_tflops)
    sections = suite.run(args.sections)
    document = {"benchmark": "gpu_suite", "mode": "tiny" if args.tiny else "full", "sections": sections,
                "total_seconds": round(time.monotonic() - suite.started, 1),
                "all_ok": all(s["status"] == "ok" for s in sections.values()),
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
                            "device": str(device), "gpu": torch.cuda.get_device_name(device) if device.type == "cuda"
                            else None, "cuda": torch.version.cuda,
                            "load_average_1m_5m_15m": [round(v, 2) for v in os.getloadavg()]}}
    print(json.dumps(document, indent=2))
    return document


if __name__ == "__main__":
    main()
