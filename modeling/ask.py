"""`wsi-llava ask INPUT --question "..."`: ask a WSI-LLaVA model about one slide; streams the answer.

INPUT is a released slide-token `.pt` file (576 x 1024, used as is), a features `.h5` from
`wsi-llava features`, or a slide file / DICOM folder (tiled and encoded with the model's tile encoder
first). The first line of output names the model and says whether its weights are trained; the
answer follows, streamed as it is generated. Errors go to stderr, without a traceback, exit code 1.

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

SLIDE_INPUT_SUFFIXES = (".pt", ".h5")     # anything else is treated as a slide for the slide pipeline


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wsi-llava ask", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", help="slide-token .pt, features .h5, or a slide file / DICOM folder")
    parser.add_argument("-q", "--question", required=True)
    parser.add_argument("--model", default=DEMO_MODEL_NAME,
                        help=f"checkpoint folder, Hub id or known name (default: {DEMO_MODEL_NAME}, untrained)")
    parser.add_argument("--revision", help="Hub revision of --model")
    parser.add_argument("--load-4bit", action="store_true", help="4-bit nf4 language model (bitsandbytes)")
    parser.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    parser.add_argument("--max-new-tokens", type=int, default=1024, help="answer length limit (official: 1024)")
    parser.add_argument("--temperature", type=float, default=0.2, help="0 = greedy (official: 0.2)")
    parser.add_argument("--no-repeat-ngram-size", type=int, default=3, help="0 disables (official: 3)")
    parser.add_argument("--seed", type=int, help="sampling seed")
    parser.add_argument("--feature-batch-size", type=int, default=64, help="tiles per batch (slide input)")
    parser.add_argument("--num-workers", type=int, help="tile-reading worker processes (slide input; default: "
                        "the slide pipeline's)")
    parser.add_argument("--heatmap", metavar="OUT", help="after the answer, write which tiles it rests on: "
                        "OUT.geojson (QuPath tile measurement 'relevance') and OUT.png; OUT is a path prefix, or an "
                        "existing folder (then <slide>.evidence.geojson/.png inside); needs tile features (.h5 or "
                        "a slide), not released .pt tokens")
    return parser


def slide_inputs_for(path: Path, loaded, device: str, batch_size: int = 64, num_workers: int | None = None):
    """The model inputs for INPUT: loaded from .pt/.h5, or extracted from a slide with the model's tile encoder."""
    from modeling.slide_inputs import from_extracted, load_slide_inputs

    if path.suffix.lower() in SLIDE_INPUT_SUFFIXES:
        return load_slide_inputs(path)
    if not path.exists():
        raise ModelError(f"{path}: no such file or directory.")
    config = loaded.model.config
    if not config.has_slide_encoder:
        raise ModelError(f"{loaded.name} has no slide encoder, so it cannot read slides; give it a slide-token "
                         ".pt file, or convert with --slide-encoder prov-gigapath.")
    from modeling.slide.features import extract_slide_features
    from modeling.tile_encoders import load_tile_encoder

    encoder = load_tile_encoder(config.tile_encoder, revision=config.tile_encoder_revision, device=device)
    state = "trained" if encoder.trained else "UNTRAINED: random weights"
    print(f"Tile encoder: {encoder.name} ({state}); extracting features of {path} ...", file=sys.stderr)

    def progress(fraction: float, message: str) -> None:
        print(f"\r  {fraction:5.0%} {message}"[:100], end="", file=sys.stderr, flush=True)

    extracted = extract_slide_features(path, encoder, batch_size=batch_size, progress=progress, device=device,
                                       num_workers=num_workers)
    print(file=sys.stderr)
    return from_extracted(extracted, str(path))


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from modeling.slide.errors import SlideError

    try:
        from modeling.checkpoints import default_device, load_model
        from modeling.inference import GenerationSettings, stream_answer
        from modeling.slide_inputs import check_compatible

        settings = GenerationSettings(temperature=args.temperature, max_new_tokens=args.max_new_tokens,
                                      no_repeat_ngram_size=args.no_repeat_ngram_size, seed=args.seed)
        device = args.device or default_device()
        loaded = load_model(args.model, load_4bit=args.load_4bit, device=device, revision=args.revision)
        print(loaded.banner(), flush=True)
        inputs = slide_inputs_for(Path(args.input), loaded, device, args.feature_batch_size, args.num_workers)
        check_compatible(inputs, loaded.model.config)
        print(f"Input: {inputs.describe()}", flush=True)
        print(f"Q: {args.question}\nA: ", end="", flush=True)
        pieces = []
        for piece in stream_answer(loaded.model, loaded.processor, inputs, args.question, settings=settings):
            pieces.append(piece)
            print(piece, end="", flush=True)
        print(flush=True)
        if args.heatmap:
            from modeling.evidence_outputs import explain_and_write

            paths = explain_and_write(loaded.model, loaded.processor, inputs, args.question, "".join(pieces).strip(),
                                      args.heatmap, progress=lambda f, m: print(f"\r  {f:5.0%} {m}"[:100], end="",
                                                                                file=sys.stderr, flush=True))
            print(file=sys.stderr)
            print(f"Evidence heatmap: {paths['geojson']} (QuPath: File > Import objects), {paths['png']}", flush=True)
    except (ModelError, SlideError) as exc:
        print(f"wsi-llava ask: error: {exc}", file=sys.stderr)
        return 1
    return 0
