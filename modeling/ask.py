"""`wsi-llava ask INPUT --question "..."`: ask a WSI-LLaVA model about one slide; streams the answer.

INPUT is a released slide-token `.pt` file (576 x 1024, used as is), a features `.h5` from
`wsi-llava features`, or a slide file / DICOM folder (tiled and encoded with the model's tile encoder
first). The first line of output names the model and says whether its weights are trained; the
answer follows, streamed as it is generated. Errors go to stderr, without a traceback, exit code 1.

Generation follows the official WSI-LLaVA inference by default (profile "official": llava_v1 prompt,
sampling at 0.2, no_repeat_ngram_size 3, up to 2048 new tokens, float16 on CUDA); `--profile` and the
generation options change it (`modeling.generation_settings`).

    wsi-llava ask TCGA-XX.pt --question "What is the histological type?" --model ./wsi-llava-7b --load-4bit
    wsi-llava ask slide.svs -q "Describe the tumor." --temperature 0 --max-new-tokens 128
    wsi-llava ask slide.h5 -q "Is there tumor?" --heatmap out/slide    # + out/slide.geojson, out/slide.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from modeling.demo_model import DEMO_MODEL_NAME
from modeling.errors import ModelError
from modeling.generation_settings import add_dtype_option, add_generation_options
from modeling.slide_token_sources import DEFAULT_SLIDE_TOKEN_SOURCE, SLIDE_TOKEN_SOURCES


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wsi-llava ask", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", help="slide-token .pt, features .h5, or a slide file / DICOM folder")
    parser.add_argument("-q", "--question", required=True)
    parser.add_argument("--model", default=DEMO_MODEL_NAME,
                        help=f"checkpoint folder, Hub id or known name (default: {DEMO_MODEL_NAME}, untrained)")
    parser.add_argument("--revision", help="Hub revision of --model")
    parser.add_argument("--load-4bit", action="store_true", help="4-bit nf4 language model (bitsandbytes)")
    parser.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda:LOCAL_RANK when available, else cpu)")
    add_dtype_option(parser)
    add_generation_options(parser)
    parser.add_argument("--slide-token-source", choices=sorted(SLIDE_TOKEN_SOURCES),
                        help="slide-encoder hidden state pooled into the slide tokens (tile features or a slide): "
                        f"{DEFAULT_SLIDE_TOKEN_SOURCE} (the official README's; default unless the model's config "
                        "says otherwise), trident (layer 11 of 12), prov-gigapath-pipeline (last layer); the "
                        "last two without encoder.layer_norm")
    parser.add_argument("--feature-batch-size", type=int, default=64, help="tiles per batch (slide input)")
    parser.add_argument("--num-workers", type=int, help="tile-reading worker processes (slide input; default: "
                        "the slide pipeline's)")
    parser.add_argument("--heatmap", metavar="OUT", help="after the answer, write which tiles it rests on: "
                        "OUT.geojson (QuPath tile measurement 'relevance') and OUT.png; OUT is a path prefix, or an "
                        "existing folder (then <slide>.evidence.geojson/.png inside); needs tile features (.h5 or "
                        "a slide), not released .pt tokens")
    return parser


def slide_inputs_for(path: Path, loaded, device: str, batch_size: int = 64, num_workers: int | None = None):
    """The model inputs for INPUT (`modeling.model_inputs.slide_model_inputs`), with progress on stderr."""
    from modeling.model_inputs import is_slide_input_file, slide_model_inputs

    def progress(fraction: float, message: str) -> None:
        print(f"\r  {fraction:5.0%} {message}"[:100], end="", file=sys.stderr, flush=True)

    inputs = slide_model_inputs(path, loaded, device=device, batch_size=batch_size, num_workers=num_workers,
                                progress=progress, announce=lambda message: print(message, file=sys.stderr))
    if not is_slide_input_file(path):
        print(file=sys.stderr)                 # end the progress line
    return inputs


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from modeling.slide.errors import SlideError

    try:
        from modeling.checkpoints import default_device, load_model
        from modeling.generation_settings import check_question_length, settings_from_args
        from modeling.inference import SlideChatSession
        from modeling.slide_inputs import use_slide_token_source

        check_question_length(args.question, args.max_question_chars)         # before the model loads
        settings = settings_from_args(args)
        device = args.device or default_device()
        loaded = load_model(args.model, load_4bit=args.load_4bit, device=device, revision=args.revision,
                            dtype=args.dtype)
        print(loaded.banner(), flush=True)
        inputs = slide_inputs_for(Path(args.input), loaded, device, args.feature_batch_size, args.num_workers)
        token_source = use_slide_token_source(loaded.model, inputs, args.slide_token_source)
        session = SlideChatSession(loaded.model, loaded.processor, inputs, settings)   # checks the inputs
        session.check_fits(args.question)                   # the prompt and max new tokens fit the context
        print(f"Input: {inputs.describe()}; slide tokens: {token_source}", flush=True)
        print(f"Q: {args.question}\nA: ", end="", flush=True)
        if settings.trim_answer:            # the trimmed answer is only known at the end
            print(session.ask(args.question), flush=True)
        else:
            for piece in session.stream(args.question):
                print(piece, end="", flush=True)
            print(flush=True)
        answer = session.history[-1][1]     # the answer as decoded and finished, what the heatmap explains
        print(f"[{_settings_line(session, settings)}]", file=sys.stderr)
        if args.heatmap:
            from modeling.evidence_outputs import explain_and_write

            paths = explain_and_write(loaded.model, loaded.processor, inputs, args.question, answer, args.heatmap,
                                      progress=lambda f, m: print(f"\r  {f:5.0%} {m}"[:100], end="",
                                                                file=sys.stderr, flush=True),
                                      template=session.template_name(settings))
            print(file=sys.stderr)
            print(f"Evidence heatmap: {paths['geojson']} (QuPath: File > Import objects), {paths['png']}", flush=True)
    except (ModelError, SlideError) as exc:
        print(f"wsi-llava ask: error: {exc}", file=sys.stderr)
        return 1
    return 0


def _settings_line(session, settings) -> str:
    values = settings.record(conversation_template=session.template_name(settings))
    shown = ("profile", "conversation_template", "do_sample", "temperature", "max_new_tokens", "no_repeat_ngram_size",
             "repetition_penalty", "seed")
    return "generation: " + ", ".join(f"{key}={values[key]}" for key in shown)
