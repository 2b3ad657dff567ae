"""JSON Lines reading: `common.jsonl.iter_jsonl` (UTF-8 checked per line with the byte offset, the JSON
nesting limit) against the floor, a bare `json.loads` per line of a text-mode file. JSON on stdout.

The file holds score-row-like objects (~1.9 KB each, 8 claims); the best of `--repeats` runs of each is
reported, interleaved so that a busy machine slows both alike.

Run: `python benchmarks/jsonl_reading.py [--lines 20000] [--repeats 15]`
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.jsonl import iter_jsonl  # noqa: E402

ROW = {"schema": "wsi-llava.evaluation.scores/1", "question_id": "q", "task": "grading",
       "wsi_precision": {"claims": [{"claim": "c" * 80, "score": 1, "explanation": "e" * 100} for _ in range(8)]},
       "nlu": {"bleu": [1, 2, 3]}}


def bare(path: Path) -> int:
    with open(path, encoding="utf-8") as handle:
        return sum(1 for text in handle if text.strip() and json.loads(text) is not None)


def checked(path: Path) -> int:
    return sum(1 for line in iter_jsonl(path) if line.error is None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "rows.jsonl"
        path.write_text((json.dumps(ROW) + "\n") * args.lines, encoding="utf-8")
        best = {"bare_json_loads_s": float("inf"), "iter_jsonl_s": float("inf")}
        for _ in range(args.repeats):
            for name, read in (("bare_json_loads_s", bare), ("iter_jsonl_s", checked)):
                started = time.perf_counter()
                assert read(path) == args.lines
                best[name] = min(best[name], time.perf_counter() - started)
    print(json.dumps({"lines": args.lines, "bytes_per_line": len(json.dumps(ROW)) + 1, "repeats": args.repeats,
                      **{k: round(v, 4) for k, v in best.items()},
                      "ratio": round(best["iter_jsonl_s"] / best["bare_json_loads_s"], 2)}))


if __name__ == "__main__":
    main()
