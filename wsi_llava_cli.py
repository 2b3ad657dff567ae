"""The `wsi-llava` command line: one entry point that dispatches to each package's commands.

Each command lives in the package that owns it and is imported only when it runs, so
`wsi-llava --help` answers instantly and a broken optional dependency of one command cannot
break the others. Like `app.py`, this module is a composition root: it may name every package.

Run `wsi-llava --help` for the list, `wsi-llava COMMAND --help` for one command.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Command:
    target: str  # "package.module:function"; the function takes argv (list[str]) and returns an exit code
    summary: str


# The registry of every command. A new command is one entry here plus its module.
COMMANDS: dict[str, Command] = {
    "tile": Command("modeling.slide.commands:tile_main",
                    "Find tissue and tile slides at a target resolution (coords h5, GeoJSON, thumbnails)."),
    "features": Command("modeling.slide.commands:features_main",
                        "Extract tile features with a registered tile encoder (features h5)."),
    "ask": Command("modeling.ask:main",
                   "Ask the model about a slide, features h5 or slide-token .pt; streams the answer."),
    "convert-llava": Command("modeling.convert_llava:main",
                             "Convert an original LLaVA-layout WSI-LLaVA checkpoint into this project's format."),
    "train": Command("training.cli:main",
                     "Run a training stage (1 alignment, 2 projector, 3 instruction tuning) from a YAML config."),
    "push-model": Command("training.hub_publish:main",
                          "Upload a trained checkpoint folder to the Hub with a generated model card."),
    "curate": Command("curation.cli:main",
                      "Curation: clean | enrich | generate | import | review-stats | annotators | assign | export | push."),
    "evaluate": Command("evaluation.cli:main",
                        "Evaluation: predict (run a model on WSI-Bench) | score (WSI-Precision/Relevance, NLU)."),
    "deploy-space": Command("ui.space_deploy:main",
                            "Upload the Gradio app to a Hugging Face Space."),
}


def _usage() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = ["usage: wsi-llava COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name.ljust(width)}  {cmd.summary}" for name, cmd in COMMANDS.items()]
    lines += ["", "Run `wsi-llava COMMAND --help` for a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help", "help"}:
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"wsi-llava: unknown command {name!r}.\n\n{_usage()}", file=sys.stderr)
        return 2
    module_name, func_name = COMMANDS[name].target.split(":")
    func = getattr(importlib.import_module(module_name), func_name)
    return int(func(rest) or 0)


def console_main() -> int:
    """The `wsi-llava` console script: `main` that ends quietly when stdout's reader has gone (`| head`)."""
    from common.pipes import exit_quietly_on_closed_pipe

    return exit_quietly_on_closed_pipe(main)


if __name__ == "__main__":
    sys.exit(console_main())
