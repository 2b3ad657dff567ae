"""The OFFICIAL side of `benchmarks/official_parity.py`: WSI-LLaVA's own inference code, run on CPU.

Runs in the official environment (transformers 4.37.2 and the release's other pins, see
`official_parity.OFFICIAL_REQUIREMENTS`) and imports the user's checkout of yu5-kim/WSI-LLaVA at f9ac921
(the folder holding `llava/`); it never imports this project. Three commands, each writing one JSON file:

  prepare-clip --out DIR     a tiny random CLIP vision tower, because the official loader always loads
                             the tower named by config.json (whose forward WSI-LLaVA bypasses): under
                             DIR/hf_home (a fake offline Hub cache entry for openai/clip-vit-large-patch14-336)
                             and DIR/LLaVA-main/clip-vit-large-patch14-336 (WSI-LLaVA's relative training path)
  run ...                    model_vqa.py's path item by item: the prompt (conv_templates[conv_mode],
                             "<image>\\n" + question), input_ids (tokenizer_image_token), first-step logits
                             (float32), greedy ids and the decoded answer (batch_decode, skip_special_tokens,
                             .strip()); multi-turn items as llava/serve/cli.py builds them (the image only in
                             the first message, the answer written back into the conversation)
  settings ...               model_vqa.py itself run as a script (runpy, `__main__`) with the arguments of
                             scripts/wsi-vqa.sh, recording the keyword arguments its `model.generate` gets

Departures from the release, all for CPU (recorded in the output): `.cuda()` is an identity; in `run` the model
is loaded exactly as builder.py loads it (float16 weights, the LoRA merged in float16 by peft), then cast with
`.float()` and its rotary cos/sin caches (built in the load dtype) rebuilt in float32, and the slide tokens
are passed in float32 instead of `.half()` (`--load-dtype float32` loads everything in float32 instead,
merge included). `settings` keeps float16 and caps generation at 2 tokens.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import sys
import time
from pathlib import Path

CLIP_HUB_NAME = "openai/clip-vit-large-patch14-336"
CLIP_TRAINING_PATH = Path("LLaVA-main") / "clip-vit-large-patch14-336"


def _parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    clip = sub.add_parser("prepare-clip")
    clip.add_argument("--out", type=Path, required=True)
    for name in ("run", "settings"):
        p = sub.add_parser(name)
        p.add_argument("--official-src", type=Path, required=True, help="the folder holding llava/")
        p.add_argument("--model-path", required=True)
        p.add_argument("--model-base")
        p.add_argument("--slide-tokens", type=Path, required=True)
        p.add_argument("--workdir", type=Path, required=True, help="cwd (relative vision-tower paths)")
        p.add_argument("--hf-home", type=Path, required=True)
        p.add_argument("--out", type=Path, required=True)
    run = sub.choices["run"]
    run.add_argument("--questions", type=Path, required=True)
    run.add_argument("--conv-mode", required=True)
    run.add_argument("--max-new-tokens", type=int, default=24)
    run.add_argument("--load-dtype", choices=("float16", "float32"), default="float16")
    sub.choices["settings"].add_argument("--script-args", required=True,
                                         help="JSON list: the settings options of wsi-vqa.sh")
    return parser.parse_args(argv)


def prepare_clip(out: Path) -> dict:
    import hashlib
    import shutil

    import torch
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(0)
    folder = out / CLIP_TRAINING_PATH
    config = CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                              image_size=32, patch_size=16, projection_dim=16)
    CLIPVisionModel(config).save_pretrained(folder)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    repo = out / "hf_home" / "hub" / ("models--" + CLIP_HUB_NAME.replace("/", "--"))
    revision = hashlib.sha1(CLIP_HUB_NAME.encode()).hexdigest()
    shutil.copytree(folder, repo / "snapshots" / revision)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    return {"clip": str(folder), "hf_home": str(out / "hf_home")}


def _environment(args) -> None:
    os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
                      HF_HOME=str(args.hf_home.resolve()))
    sys.path.insert(0, str(args.official_src.resolve()))


def _versions() -> dict:
    import peft
    import tokenizers
    import torch
    import transformers

    return {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__, "peft": peft.__version__}


@contextlib.contextmanager
def _cuda_is_identity():
    import torch

    saved = torch.Tensor.cuda
    torch.Tensor.cuda = lambda self, *a, **k: self
    try:
        yield
    finally:
        torch.Tensor.cuda = saved


class _Float16IsFloat32:
    """A module's `torch` global whose float16 is float32 (`--load-dtype float32`)."""

    def __init__(self, real):
        self._real = real

    def __getattr__(self, name):
        return self._real.float32 if name == "float16" else getattr(self._real, name)


def _load(mv, args):
    """model_vqa.py 32-37: disable_torch_init, get_model_name_from_path, load_pretrained_model."""
    import llava.model.builder as builder
    import torch

    if args.load_dtype == "float32":
        builder.torch = _Float16IsFloat32(torch)
    mv.disable_torch_init()
    model_path, model_base = args.model_path, args.model_base
    log = io.StringIO()
    with contextlib.redirect_stdout(log):
        tokenizer, model, _, _ = mv.load_pretrained_model(model_path, model_base, mv.get_model_name_from_path(model_path))
    model = model.float().eval()
    for module in model.modules():        # rotary caches were built in the load dtype (float16): rebuild in float32
        if hasattr(module, "_set_cos_sin_cache") and hasattr(module, "inv_freq"):
            module.inv_freq = 1.0 / (module.base ** (torch.arange(0, module.dim, 2).float() / module.dim))
            module._set_cos_sin_cache(module.max_seq_len_cached, module.inv_freq.device, torch.float32)
    return tokenizer, model, log.getvalue()


def _prompt_record(mv, tokenizer, model, image, prompt: str, max_new_tokens: int) -> dict:
    import torch

    input_ids = mv.tokenizer_image_token(prompt, tokenizer, mv.IMAGE_TOKEN_INDEX, return_tensors="pt").unsqueeze(0)
    images = image.to(model.device, dtype=torch.float32).unsqueeze(0)          # model_vqa.py 91, 96 (float32)
    with torch.inference_mode():
        logits = model(input_ids, images=images, image_sizes=[image.size], use_cache=False).logits[0, -1].float()
        output_ids = model.generate(input_ids, images=images, image_sizes=[image.size], do_sample=False,
                                    temperature=0.0, top_p=None, num_beams=1, no_repeat_ngram_size=3,
                                    max_new_tokens=max_new_tokens, use_cache=True)
    return {"prompt": prompt, "input_ids": input_ids[0].tolist(), "first_step_logits": logits.tolist(),
            "greedy_ids": output_ids[0].tolist(),
            "greedy_text": tokenizer.batch_decode(output_ids, skip_special_tokens=True)[0].strip()}   # 107


def _question(mv, model, question: str) -> str:
    """model_vqa.py 74-78."""
    if model.config.mm_use_im_start_end:
        return mv.DEFAULT_IM_START_TOKEN + mv.DEFAULT_IMAGE_TOKEN + mv.DEFAULT_IM_END_TOKEN + "\n" + question
    return mv.DEFAULT_IMAGE_TOKEN + "\n" + question


def run(args) -> dict:
    _environment(args)
    slide, questions = args.slide_tokens.resolve(), json.loads(args.questions.read_text())
    os.chdir(args.workdir)
    from llava.eval import model_vqa as mv

    import torch

    tokenizer, model, log = _load(mv, args)
    image = mv.load_image(str(slide))                                          # torch.load, (576, 1024)
    items = []
    with _cuda_is_identity():
        for item in questions:
            conv = mv.conv_templates[args.conv_mode].copy()
            turns = []
            for index, turn in enumerate(item["turns"]):
                message = _question(mv, model, turn["question"]) if index == 0 else turn["question"]
                conv.append_message(conv.roles[0], message)                    # serve/cli.py 86-88
                conv.append_message(conv.roles[1], None)
                record = _prompt_record(mv, tokenizer, model, image, conv.get_prompt(), args.max_new_tokens)
                answer = turn.get("answer", record["greedy_text"])
                conv.messages[-1][-1] = answer                                 # serve/cli.py 107
                turns.append(record | {"answer_written_back": answer})
            items.append({"id": item["id"], "turns": turns})
    departures = [".cuda() is an identity (CPU)", "the slide tokens are passed as float32, not .half()",
                  f"weights loaded as builder.py does ({args.load_dtype}), then model.float()",
                  "rotary cos/sin caches rebuilt in float32 after .float()",
                  f"greedy: do_sample=False, temperature=0 (model_vqa.py --temperature 0), "
                  f"max_new_tokens={args.max_new_tokens}"]
    return {"versions": _versions(), "departures": departures, "builder_log": log, "model_class": type(model).__name__,
            "load_dtype": args.load_dtype, "tokenizer": {"class": type(tokenizer).__name__,
                                                         "legacy": getattr(tokenizer, "legacy", None),
                                                         "vocab": len(tokenizer)},
            "vocab_size": model.config.vocab_size, "slide_shape": list(image.shape),
            "torch_threads": torch.get_num_threads(), "items": items}


def settings(args) -> dict:
    """Run model_vqa.py as `__main__` with wsi-vqa.sh's options; record what model.generate receives."""
    import runpy
    import tempfile

    _environment(args)
    slide = args.slide_tokens.resolve()
    os.chdir(args.workdir)
    import llava.model.builder as builder

    calls = []
    real_loader = builder.load_pretrained_model

    def loader(*a, **k):
        tokenizer, model, processor, context_len = real_loader(*a, **k)
        real_generate = model.generate

        def recording_generate(inputs=None, **kwargs):
            calls.append({"kwargs": {k2: v for k2, v in kwargs.items() if k2 not in ("images", "image_sizes")},
                          "images_dtype": str(kwargs["images"].dtype), "model_dtype": str(model.dtype)})
            return real_generate(inputs, **(kwargs | {"max_new_tokens": 2}))  # what is recorded: the call
        model.generate = recording_generate
        return tokenizer, model, processor, context_len

    builder.load_pretrained_model = loader
    with tempfile.TemporaryDirectory() as tmp:
        questions, answers = Path(tmp) / "q.jsonl", Path(tmp) / "out" / "a.jsonl"
        questions.write_text(json.dumps({"question_id": "q1", "image": slide.name, "question": "Grade?",
                                         "metadata": "x", "T-answer": ""}) + "\n")
        script = args.official_src.resolve() / "llava" / "eval" / "model_vqa.py"
        argv = [str(script), "--model-path", args.model_path, "--image-folder", str(slide.parent),
                "--question-file", str(questions), "--answers-file", str(answers), *json.loads(args.script_args)]
        if args.model_base:
            argv += ["--model-base", args.model_base]
        sys.argv = argv
        started = time.time()
        with _cuda_is_identity(), contextlib.redirect_stdout(io.StringIO()):
            runpy.run_path(str(script), run_name="__main__")
        answer = json.loads(answers.read_text().splitlines()[0])["answer"]
    call = calls[0]
    call["kwargs"] = {k: (v if isinstance(v, (int, float, str, bool, type(None))) else repr(v))
                      for k, v in call["kwargs"].items()}
    return {"versions": _versions(), "argv": argv[1:], "generate": call, "answer_written": answer,
            "seconds": round(time.time() - started, 2)}


def main(argv=None) -> int:
    args = _parse(argv)
    if args.command != "prepare-clip":      # absolute before any chdir (abspath keeps a symlink's own name)
        args.model_path = os.path.abspath(args.model_path)
        args.model_base = os.path.abspath(args.model_base) if args.model_base else None
        for name in ("official_src", "slide_tokens", "workdir", "hf_home", "out", "questions"):
            if getattr(args, name, None) is not None:
                setattr(args, name, getattr(args, name).resolve())
    if args.command == "prepare-clip":
        result, out = prepare_clip(args.out), args.out / "clip.json"
    else:
        result, out = (run if args.command == "run" else settings)(args), args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
