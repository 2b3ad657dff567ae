"""Multi-turn latency with the cached slide prefix, and 4-bit vs 16-bit weight memory. JSON on stdout.

Latency: a randomly initialised WSI-LLaVA (LLaMA-shaped language model of --hidden/--layers with the
offline demo tokenizer's 513-token vocabulary, 576 slide tokens) answers two questions about one slide
with greedy decoding and exactly --new-tokens tokens per answer. Reported (best of --repeats after one
warm-up round: the minimum, robust on a shared machine): turn 1 (slide prefix + question prefill, then
decoding), turn 2 with `SlideChatSession`'s cached slide prefix, and turn 2 recomputed from scratch
(what a stateless server does); plus the prefill alone for both turn-2 variants.

Memory: the same model saved and loaded 16-bit (bf16) and 4-bit (nf4, double quantisation, LLM only;
slide encoder, projector and lm_head stay 16-bit); `get_memory_footprint()` of each, and the
analytical footprint of the real 7B shape (Vicuna-7B + Prov-GigaPath slide encoder) from parameter
counts on the meta device (4-bit: 4 bits + double-quantised absmax per 64 weights).

Run: `python benchmarks/model_inference.py [--hidden 1024 --layers 8 --new-tokens 32 --repeats 5 --device cpu]`
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

QUESTIONS = ("What is the histological type of this tumor?", "What is the grade, and what supports it?")


def build(args, tokenizer):
    from modeling.configuration_wsi_llava import WsiLlavaConfig
    from modeling.demo_model import tiny_slide_encoder_config
    from modeling.modeling_wsi_llava import WsiLlavaForConditionalGeneration
    from modeling.processing_wsi_llava import WsiLlavaProcessor

    image_id = WsiLlavaProcessor.add_image_token(tokenizer)
    text = dict(model_type="llama", vocab_size=len(tokenizer), hidden_size=args.hidden,
                intermediate_size=int(args.hidden * 2.6875), num_hidden_layers=args.layers,
                num_attention_heads=args.hidden // 64, max_position_embeddings=4096)
    config = WsiLlavaConfig(text_config=text, tile_encoder="random-tiny", tile_feature_dim=192,
                            slide_encoder_config=tiny_slide_encoder_config(embed_dim=128, depth=2),
                            slide_token_dim=1024, image_token_index=image_id)
    torch.manual_seed(0)
    model = WsiLlavaForConditionalGeneration(config).eval()
    return model, WsiLlavaProcessor(tokenizer=tokenizer)


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def latency(model, processor, args) -> dict:
    from modeling.inference import GenerationSettings, SlideChatSession, generate_kwargs
    from modeling.slide_inputs import SlideInputs

    model.generation_config.min_new_tokens = args.new_tokens           # equal work in every turn
    settings = GenerationSettings.greedy(max_new_tokens=args.new_tokens)
    slide = SlideInputs("slide_tokens", "random", slide_tokens=torch.randn(1, 576, 1024))
    rows = {"turn1_s": [], "turn2_cached_s": [], "turn2_recomputed_s": [],
            "turn2_prefill_cached_s": [], "turn2_prefill_recomputed_s": []}
    for _ in range(args.repeats + 1):                                    # repeat 0 warms up, not reported
        session = SlideChatSession(model, processor, slide, settings)
        seconds, first = timed(lambda: session.ask(QUESTIONS[0]))
        rows["turn1_s"].append(seconds)
        rows["turn2_cached_s"].append(timed(lambda: session.ask(QUESTIONS[1]))[0])
        prompt = processor.encode_prompt(QUESTIONS[1], [(QUESTIONS[0], first)])
        length = prompt["input_ids"].shape[1]
        with torch.inference_mode():
            rows["turn2_recomputed_s"].append(timed(lambda: model.generate(
                **prompt, **slide.model_kwargs(), pad_token_id=processor.pad_token_id,
                **generate_kwargs(settings, length, session.lead_ids)))[0])
            rows["turn2_prefill_recomputed_s"].append(timed(lambda: model(**prompt, **slide.model_kwargs()))[0])
            prefix = len(session._prefix_ids)
            rows["turn2_prefill_cached_s"].append(timed(lambda: model(
                input_ids=prompt["input_ids"][:, prefix:], attention_mask=prompt["attention_mask"],
                cache=copy.deepcopy(session._prefix_cache)))[0])
    result = {key: round(min(values[1:]), 4) for key, values in rows.items()}
    result["prompt_tokens_turn2"] = length
    result["slide_prefix_tokens"] = prefix
    result["turn2_cached_over_turn1"] = round(result["turn2_cached_s"] / result["turn1_s"], 3)
    result["turn2_cached_over_recomputed"] = round(result["turn2_cached_s"] / result["turn2_recomputed_s"], 3)
    result["prefill_cached_over_recomputed"] = round(
        result["turn2_prefill_cached_s"] / result["turn2_prefill_recomputed_s"], 3)
    return result


def memory(model, processor, device: str) -> dict:
    from modeling.checkpoints import load_model

    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        out = {}
        for label, four_bit in (("bf16", False), ("nf4", True)):
            loaded = load_model(tmp, load_4bit=four_bit, device=device, dtype=torch.bfloat16)
            llm = sum(p.numel() * p.element_size() for n, p in loaded.model.named_parameters()
                      if n.startswith("language_model.") and "lm_head" not in n)
            out[label] = {"total_mib": round(loaded.model.get_memory_footprint() / 2**20, 2),
                          "llm_without_lm_head_mib": round(llm / 2**20, 2)}
            del loaded
    out["nf4_over_bf16_total"] = round(out["nf4"]["total_mib"] / out["bf16"]["total_mib"], 3)
    out["nf4_over_bf16_llm"] = round(out["nf4"]["llm_without_lm_head_mib"] / out["bf16"]["llm_without_lm_head_mib"], 3)
    return out


def analytical_7b() -> dict:
    """Vicuna-7B + Prov-GigaPath slide encoder + mlp2x_gelu projector, counted on the meta device."""
    from modeling.configuration_wsi_llava import WsiLlavaConfig
    from modeling.modeling_wsi_llava import WsiLlavaForConditionalGeneration

    with torch.device("meta"):
        model = WsiLlavaForConditionalGeneration(WsiLlavaConfig(slide_token_dim=1024))
    counts = {"quantised": 0, "kept": 0}
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and name.startswith("language_model.model."):
            counts["quantised"] += module.weight.numel()
    counts["kept"] = sum(p.numel() for p in model.parameters()) - counts["quantised"]
    bits_nf4 = 4 + 8 / 64 + 32 / (64 * 256)          # nf4 + 8-bit absmax per 64 + fp32 per 256 absmax blocks
    bf16 = (counts["quantised"] + counts["kept"]) * 2
    nf4 = counts["quantised"] * bits_nf4 / 8 + counts["kept"] * 2
    return {"params_quantised": counts["quantised"], "params_kept_16bit": counts["kept"],
            "bf16_gib": round(bf16 / 2**30, 2), "nf4_gib": round(nf4 / 2**30, 2), "nf4_over_bf16": round(nf4 / bf16, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()

    import modeling.auto_registration  # noqa: F401  (Auto registration)
    from modeling.demo_model import train_tokenizer

    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = train_tokenizer(tmp)
    model, processor = build(args, tokenizer)
    model.to(args.device)
    report = {"benchmark": "model_inference", "device": args.device, "torch": torch.__version__,
              "cpu_threads": torch.get_num_threads(), "machine": platform.machine(),
              "model": {"llm_hidden": args.hidden, "llm_layers": args.layers,
                        "llm_params_m": round(sum(p.numel() for p in model.language_model.parameters()) / 1e6, 1),
                        "new_tokens": args.new_tokens, "repeats": args.repeats},
              "latency": latency(model, processor, args),
              "memory": memory(model.to("cpu"), processor, args.device),
              "memory_7b_analytical": analytical_7b()}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
