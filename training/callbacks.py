"""Progress and metrics: one console line per log, one JSON line per log (`metrics.jsonl`), TensorBoard.

    [stage 3] step 20/120 (epoch 0.50) loss 2.3145 lr 1.93e-04 grad_norm 0.532 | 3.1 s/step
    {"time": "...", "step": 20, "epoch": 0.5, "loss": 2.3145, "learning_rate": 0.000193, ...}

TensorBoard events go to `<output_dir>/tensorboard` (the Trainer's TensorBoardCallback with our
writer). Only the main process writes.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from transformers import TrainerCallback


class JsonlMetricsCallback(TrainerCallback):
    """Appends every log (train and eval) as one JSON line to `path`."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        row = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "step": state.global_step, "epoch": state.epoch} | logs
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(row, default=float) + "\n")


class ConsoleCallback(TrainerCallback):
    """A compact line per log on stderr (the Trainer's own printer is removed)."""

    def __init__(self, stage: int, stream=None):
        self.stage = stage
        self.stream = stream or sys.stderr
        self._last = None

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            print(f"[stage {self.stage}] training: {state.max_steps} optimizer steps, "
                  f"{args.per_device_train_batch_size} x {args.gradient_accumulation_steps} accumulation x "
                  f"{args.world_size} process(es) per step", file=self.stream, flush=True)
        self._last = (time.perf_counter(), state.global_step)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        parts = [f"[stage {self.stage}] step {state.global_step}/{state.max_steps} (epoch {state.epoch or 0:.2f})"]
        for key, value in logs.items():
            if key in ("epoch", "total_flos") or key.startswith("lr/"):
                continue
            parts.append(f"{key} {value:.4g}" if isinstance(value, float) else f"{key} {value}")
        now = time.perf_counter()
        if self._last is not None and state.global_step > self._last[1]:
            parts.append(f"| {(now - self._last[0]) / (state.global_step - self._last[1]):.2f} s/step")
            self._last = (now, state.global_step)
        print(" ".join(parts), file=self.stream, flush=True)


def tensorboard_callback(log_dir: str | Path):
    """The Trainer's TensorBoard callback writing to `log_dir` (also for logs after training ends)."""
    from transformers.integrations import TensorBoardCallback

    callback = TensorBoardCallback()
    callback.logging_dir = str(log_dir)
    return callback
