"""Parity with WSI-LLaVA's official inference code, as a check anyone can run. One JSON verdict on stdout.

    python benchmarks/official_parity.py --official-src ~/src/WSI-LLaVA --official-python ~/venvs/llava/bin/python
    python benchmarks/official_parity.py --official-src ~/src/WSI-LLaVA --make-venv ~/venvs/llava   # builds it

`--official-src` is your checkout (or extract) of yu5-kim/WSI-LLaVA at the release commit f9ac921: the folder
holding `WSI_LLAVA/` (or `llava/` itself). Its code is only run, in its own Python (`--official-python`, with
the release's pins: `OFFICIAL_REQUIREMENTS` and a CPU torch; `--make-venv DIR` creates one with pip), by
`benchmarks/official_parity_official_side.py`; nothing of it is copied here.

What it does (CPU, a few minutes):
1. writes tiny random checkpoints in the release layout (`official_parity_checkpoints.py`: plain with
   tokenizer `legacy` true, unset and false; a LoRA release with non_lora_trainables.bin on its base), a
   LLaMA-like sentencepiece tokenizer and a (576, 1024) slide-token `.pt`;
2. converts each with OUR `convert-llava` (which also checks the tokenizer against sentencepiece);
3. runs the official `model_vqa.py` path (`official_parity_official_side.py run`) and ours
   (`load_model` -> `slide_model_inputs` -> `SlideChatSession`) on the same slide and questions: open,
   multiple choice, report, and two 2-turn conversations (one with a given first answer, one with the model's);
4. compares, per layout and turn: prompt strings, input ids (our 576 placeholders collapsed to the official
   single -200), first-step logits in float32 (max |difference| over the official vocabulary <= 1e-4; our
   extra `<image>` row is never generated), greedy ids and the decoded answers (equal);
5. runs model_vqa.py itself as a script with scripts/wsi-vqa.sh's options and compares the keyword arguments
   its `model.generate` receives (and the dtype) with OUR defaults (profile "official").

Both sides decode greedily here (model_vqa's `--temperature 0`, our `temperature=0`) with `--max-new-tokens`
new tokens; everything else is each side's default. Dtypes: the official side loads the model as builder.py
does (float16 weights, the LoRA merged by peft in float16), then runs in float32 (`.float()`); ours loads the
converted checkpoint in float32 on the CPU. A LoRA run of the official side with EVERYTHING in float32
(merge included) is reported as information (`lora_float32_merge`): it differs from both by the float16
rounding of the merged weights, as the real release (float16 on CUDA) does.

Exit status 0 when everything matches, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

HERE = Path(__file__).resolve().parent
LOGITS_ATOL = 1e-4
# The release ships only a conda export (llava-environment.yml at f9ac921); its pins for what the
# inference path imports. torch comes separately (--torch-requirement), a CPU build.
OFFICIAL_REQUIREMENTS = (
    "transformers==4.37.2", "tokenizers==0.15.1", "accelerate==0.21.0", "peft==0.13.2", "huggingface-hub==0.26.2",
    "safetensors==0.4.5", "sentencepiece==0.1.99", "protobuf==5.28.3", "einops==0.6.1", "einops-exts==0.0.4",
    "shortuuid==1.0.13", "numpy==1.26.4", "pillow==10.4.0", "tqdm==4.67.0", "regex==2024.11.6", "requests==2.32.3",
    "pyyaml==6.0.2", "packaging==24.2", "psutil==6.1.0", "filelock==3.16.1", "fsspec==2024.10.0")
SETTING_OPTIONS = ("--conv-mode", "--temperature", "--top_p", "--num_beams", "--num-chunks", "--chunk-idx")
QUESTIONS = [
    {"id": "open", "turns": [{"question": "What is the histological grade of this tumor?"}]},
    {"id": "multiple_choice", "turns": [{"question": "What is the histological grade of this tumor? A) Grade 1 "
                                                     "B) Grade 2 C) Grade 3 D) Grade 4\nAnswer with the option's "
                                                     "letter from the given choices directly."}]},
    {"id": "report", "turns": [{"question": "Please write a pathology report for this whole slide image: global "
                                            "morphology, tissue architecture, cellular morphology and diagnosis."}]},
    {"id": "two_turns_given", "turns": [
        {"question": "Can you describe the pattern of tumor infiltration?",
         "answer": "The tumor cells infiltrate the stroma in nests and cords."},
        {"question": "Is there necrosis?"}]},
    {"id": "two_turns_generated", "turns": [{"question": "What is the histological type of this tumor?"},
                                            {"question": "What is the stage?"}]},
]


def official_code(src: Path) -> tuple[Path, Path]:
    """(the folder holding llava/, scripts/wsi-vqa.sh) of a checkout or extract."""
    for root in (src / "WSI_LLAVA", src):
        if (root / "llava" / "eval" / "model_vqa.py").is_file():
            script = root / "scripts" / "wsi-vqa.sh"
            if not script.is_file():
                raise SystemExit(f"{script}: not found; --official-src must be the release (yu5-kim/WSI-LLaVA f9ac921).")
            return root, script
    raise SystemExit(f"{src}: no llava/eval/model_vqa.py in it or in WSI_LLAVA/; point --official-src at your "
                     "checkout of yu5-kim/WSI-LLaVA.")


def wsi_vqa_settings(script: Path) -> list[str]:
    """The settings options of the model_vqa.py call in wsi-vqa.sh (paths are left to the benchmark)."""
    text = script.read_text().replace("\\\n", " ")
    line = next(line for line in text.splitlines() if "model_vqa.py" in line and not line.lstrip().startswith("#"))
    tokens = shlex.split(line, comments=True)
    options = []
    for index, token in enumerate(tokens):
        if token in SETTING_OPTIONS and index + 1 < len(tokens) and not tokens[index + 1].startswith("--"):
            options += [token, tokens[index + 1]]
    return options


def make_venv(folder: Path, torch_requirement: str) -> Path:
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
    pip = [str(folder / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    subprocess.run(pip + shlex.split(torch_requirement), check=True)
    subprocess.run(pip + list(OFFICIAL_REQUIREMENTS), check=True)
    return folder / "bin" / "python"


def official(python: str, *args: str) -> None:
    command = [python, str(HERE / "official_parity_official_side.py"), *args]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"the official side failed ({' '.join(command[2:4])} ...):\n{done.stderr[-4000:]}")


def run_official(python: str, code: Path, layout: dict, work: Path, out: Path, conv_mode: str,
                 max_new_tokens: int, load_dtype: str = "float16") -> dict:
    args = ["run", "--official-src", str(code), "--model-path", str(layout["path"]), "--slide-tokens",
            str(work / "slide_576x1024.pt"), "--workdir", str(work), "--hf-home", str(work / "hf_home"),
            "--questions", str(work / "questions.json"), "--conv-mode", conv_mode, "--max-new-tokens",
            str(max_new_tokens), "--load-dtype", load_dtype, "--out", str(out)]
    if layout["base"] is not None:
        args += ["--model-base", str(layout["base"])]
    official(python, *args)
    return json.loads(out.read_text())


def run_ours(converted: Path, slide: Path, max_new_tokens: int) -> dict:
    """Our path with our defaults (greedy and short, as the official side): records per item and turn."""
    import torch

    from modeling.checkpoints import load_model
    from modeling.generation_settings import GenerationSettings
    from modeling.inference import SlideChatSession
    from modeling.model_inputs import slide_model_inputs

    loaded = load_model(str(converted), device="cpu")
    model, processor = loaded.model, loaded.processor
    inputs = slide_model_inputs(slide, loaded)
    settings = GenerationSettings.from_profile("official", temperature=0.0, max_new_tokens=max_new_tokens)
    items = []
    for item in QUESTIONS:
        session = SlideChatSession(model, processor, inputs, settings)
        turns = []
        for turn in item["turns"]:
            prompt = processor.build_prompt(turn["question"], session.history, template=session.template_name())
            ids = processor.tokenize(prompt)[0]
            with torch.inference_mode():
                logits = model(input_ids=torch.tensor([ids]), **inputs.model_kwargs()).logits[0, -1].float()
            generated, answer = session.generate_answer(turn["question"])
            if "answer" in turn:
                session.history[-1] = (turn["question"], turn["answer"])
            turns.append({"prompt": prompt, "input_ids": ids, "first_step_logits": logits.tolist(),
                          "greedy_ids": generated, "greedy_text": answer})
        items.append({"id": item["id"], "turns": turns})
    return {"dtype": str(model.dtype), "template": settings.conversation_template or processor.generation_template,
            "image_token_id": processor.image_token_id, "bos": processor.tokenizer.bos_token_id, "items": items}


def compare(ours: dict, theirs: dict) -> dict:
    from modeling.tokenizer_parity import collapse_placeholders

    vocab = theirs["vocab_size"]
    turns, worst = [], 0.0
    for mine, other in zip(ours["items"], theirs["items"], strict=True):
        for index, (a, b) in enumerate(zip(mine["turns"], other["turns"], strict=True)):
            diff = max(abs(x - y) for x, y in zip(a["first_step_logits"][:vocab], b["first_step_logits"], strict=True))
            worst = max(worst, diff)
            official_new = b["greedy_ids"][1:] if b["greedy_ids"][:1] == [ours["bos"]] else b["greedy_ids"]
            row = {"item": mine["id"], "turn": index + 1, "prompt_equal": a["prompt"] == b["prompt"],
                   "ids_equal": collapse_placeholders(a["input_ids"], ours["image_token_id"]) == b["input_ids"],
                   "n_ids_official": len(b["input_ids"]), "logits_max_abs_diff": diff,
                   "greedy_ids_equal": a["greedy_ids"] == official_new, "greedy_text_equal": a["greedy_text"] ==
                   b["greedy_text"], "n_new_tokens": len(official_new)}
            row["ok"] = (row["prompt_equal"] and row["ids_equal"] and diff <= LOGITS_ATOL and row["greedy_ids_equal"]
                         and row["greedy_text_equal"])
            turns.append(row)
    return {"ok": all(row["ok"] for row in turns), "logits_max_abs_diff": worst, "turns": turns}


def settings_check(official_call: dict, conv_mode: str, converted_template: str) -> dict:
    """model_vqa.py's generate kwargs under wsi-vqa.sh's options vs our defaults (profile "official")."""
    from modeling.generation_settings import OFFICIAL, resolve_dtype_name

    kwargs = official_call["generate"]["kwargs"]
    pairs = {name: (kwargs.get(name), getattr(OFFICIAL, name)) for name in
             ("do_sample", "temperature", "top_p", "num_beams", "no_repeat_ngram_size", "max_new_tokens",
              "repetition_penalty")}
    pairs["conversation_template"] = (conv_mode, converted_template)
    pairs["dtype_on_cuda"] = (official_call["generate"]["model_dtype"].removeprefix("torch."),
                              resolve_dtype_name("auto", "cuda"))
    checks = {name: {"official": a, "ours": b, "equal": a == b} for name, (a, b) in pairs.items()}
    return {"ok": all(c["equal"] for c in checks.values()), "checks": checks, "official_argv": official_call["argv"]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--official-src", type=Path, required=True, help="checkout of yu5-kim/WSI-LLaVA at f9ac921")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--official-python", help="a Python with the release's pins (see OFFICIAL_REQUIREMENTS)")
    where.add_argument("--make-venv", type=Path, help="create that venv with the pins first (pip)")
    parser.add_argument("--torch-requirement", default="torch",
                        help="what --make-venv installs for torch (e.g. 'torch --index-url https://download.pytorch.org/whl/cpu')")
    parser.add_argument("--max-new-tokens", type=int, default=24, help="greedy tokens compared per turn")
    parser.add_argument("--work", type=Path, help="keep the checkpoints and outputs here (default: a temp folder)")
    args = parser.parse_args(argv)

    started = time.time()
    code, script = official_code(args.official_src.resolve())
    python = args.official_python or str(make_venv(args.make_venv, args.torch_requirement))
    script_options = wsi_vqa_settings(script)
    conv_mode = script_options[script_options.index("--conv-mode") + 1]
    with tempfile.TemporaryDirectory(prefix="official-parity-") as tmp:
        work = (args.work or Path(tmp)).resolve()
        verdict = check_all(python, code, script_options, conv_mode, work, args.max_new_tokens)
    verdict["seconds"] = round(time.time() - started, 1)
    print(json.dumps(verdict, indent=1))
    return 0 if verdict["ok"] else 1


def check_all(python: str, code: Path, script_options: list[str], conv_mode: str, work: Path,
              max_new_tokens: int) -> dict:
    import platform

    import torch
    import transformers

    from benchmarks.official_parity_checkpoints import LORA_LAYOUT, write_all
    from modeling.convert_llava import convert
    from modeling.processing_wsi_llava import WsiLlavaProcessor

    work.mkdir(parents=True, exist_ok=True)
    layouts = write_all(work / "checkpoints")
    for name in ("slide_576x1024.pt",):
        (work / name).write_bytes((work / "checkpoints" / name).read_bytes())
    (work / "questions.json").write_text(json.dumps(QUESTIONS))
    official(python, "prepare-clip", "--out", str(work))
    results, official_versions = {}, None
    for name, layout in layouts.items():
        converted = work / "converted" / name
        convert(str(layout["path"]), converted, base=str(layout["base"]) if layout["base"] else None, overwrite=True)
        theirs = run_official(python, code, layout, work, work / "official" / f"{name}.json", conv_mode,
                              max_new_tokens)
        official_versions = theirs["versions"]
        ours = run_ours(converted, work / "slide_576x1024.pt", max_new_tokens)
        results[name] = compare(ours, theirs) | {"official_tokenizer_legacy": theirs["tokenizer"]["legacy"],
                                                 "ours_dtype": ours["dtype"], "ours_template": ours["template"]}
        if name == LORA_LAYOUT:
            fp32 = run_official(python, code, layout, work, work / "official" / f"{name}-fp32.json", conv_mode,
                                max_new_tokens, load_dtype="float32")
            info = compare(ours, fp32)
            results[name]["lora_float32_merge"] = {"logits_max_abs_diff": info["logits_max_abs_diff"],
                                                   "note": "information only: the official merge done in float32"}
    first = layouts["llava-tiny"]
    official(python, "settings", "--official-src", str(code), "--model-path", str(first["path"]), "--slide-tokens",
             str(work / "slide_576x1024.pt"), "--workdir", str(work), "--hf-home", str(work / "hf_home"),
             "--script-args", json.dumps(script_options), "--out", str(work / "official" / "settings.json"))
    official_call = json.loads((work / "official" / "settings.json").read_text())
    template = WsiLlavaProcessor.from_pretrained(work / "converted" / "llava-tiny").generation_template
    settings = settings_check(official_call, conv_mode, template)
    return {"benchmark": "official_parity", "ok": settings["ok"] and all(r["ok"] for r in results.values()),
            "official": {"code": str(code), "wsi_vqa_sh_options": script_options, "versions": official_versions},
            "ours": {"python": platform.python_version(), "torch": torch.__version__,
                     "transformers": transformers.__version__},
            "logits_atol": LOGITS_ATOL, "max_new_tokens_compared": max_new_tokens,
            "settings": settings, "layouts": results}


if __name__ == "__main__":
    raise SystemExit(main())
