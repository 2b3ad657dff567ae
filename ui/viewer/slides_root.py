"""Find a WSI-Bench slide's own file under the app's `--slides-root`, for the viewer.

    index = SlidesRoot("/data/tcga")                    # listed once, on first use (at most MAX_DEPTH deep)
    path, why_not = index.find("TCGA-A7-A0CE-01Z-00-DX1.2A1B3C...")   # (Path, "") or (None, the reason)

Layouts found: `ROOT/<slide id>.<ext>`, `ROOT/<project>/<slide id>.<ext>`, the GDC download layout
`ROOT/<file uuid>/<slide id>.<ext>` (any folder depth up to MAX_DEPTH), a DICOM folder named by the slide
id, files whose name starts with `<slide id>.` (a WSI-Bench id without the GDC UUID suffix), and
`<barcode>.<ext>` for an id `<barcode>.<uuid>` (a file renamed without its UUID).
Extensions: those `open_slide` reads.
"""

from __future__ import annotations

import bisect
import os
import threading
from pathlib import Path

SLIDE_SUFFIXES = (".svs", ".tif", ".tiff", ".ndpi", ".vms", ".vmu", ".scn", ".mrxs", ".bif", ".svslide", ".dcm",
                  ".png", ".jpg", ".jpeg")
MAX_DEPTH = 3
MAX_FILES = 500_000


class SlidesRoot:
    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser()
        self._index: dict[str, Path] | None = None
        self._names: list[str] = []
        self._lock = threading.Lock()

    def _build(self) -> dict[str, Path]:
        index: dict[str, Path] = {}
        base_depth = len(self.root.parts)
        seen = 0
        for folder, dirs, files in os.walk(self.root):
            depth = len(Path(folder).parts) - base_depth
            if depth >= MAX_DEPTH:
                dirs[:] = []
            dirs.sort()
            for name in sorted(files):
                seen += 1
                lower = name.lower()
                for suffix in SLIDE_SUFFIXES:
                    if lower.endswith(suffix):
                        stem = name[: -len(suffix)]
                        target = Path(folder) if suffix == ".dcm" else Path(folder) / name
                        index.setdefault(stem if suffix != ".dcm" else Path(folder).name, target)
                        break
            if seen > MAX_FILES:
                break
        return index

    def find(self, slide_id: str) -> tuple[Path | None, str]:
        if not self.root.is_dir():
            return None, f"--slides-root {self.root.name} is not a folder"
        with self._lock:
            if self._index is None:
                self._index = self._build()
                self._names = sorted(self._index)
        path = self._index.get(slide_id) or self._index.get(slide_id.split(".", 1)[0])   # with or without UUID
        if path is None:
            prefix = slide_id + "."
            at = bisect.bisect_left(self._names, prefix)
            if at < len(self._names) and self._names[at].startswith(prefix):
                path = self._index[self._names[at]]
        if path is None:
            return None, f"no file for slide {slide_id} under --slides-root"
        return path, ""
