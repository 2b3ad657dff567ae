"""What an evidence heatmap (`modeling.evidence.TileEvidence`) becomes: files, an overview overlay, viewer values.

- `write_evidence_files(evidence, OUT)`: OUT.geojson (QuPath tile objects with measurements
  `relevance` (nats) and `relevance_normalized` (relevance / max |relevance|, in [-1, 1]); the
  provenance in the collection's "wsi_llava" member) and OUT.png (the heatmap over the tile grid,
  transparent where there is no tile). OUT is a path prefix ("out/slide1" -> out/slide1.geojson,
  out/slide1.png); an existing folder gets <slide_id>.evidence.geojson / .png inside.
- `overview_overlay(evidence, thumbnail.size)` / `blend_on_overview(evidence, thumbnail)`: the same
  colours at an overview thumbnail's size (weak evidence faded out), for the app's overview;
  `write_overview_overlay(evidence, thumbnail.size, path)` writes the overlay as an RGBA PNG.
- `viewer_tiles(evidence)`: one {x, y, w, h (level-0 px), relevance, relevance_normalized} per tile,
  for a deep-zoom viewer overlay.
- `explain_and_write(model, processor, inputs, question, answer, OUT)`: `explain_answer` + the files
  (what `wsi-llava ask ... --heatmap OUT` runs).

Colours: blue = evidence against the answer, red = evidence for it (see `modeling.slide.heatmap`).
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from common.atomic import atomic_path
from modeling.slide.heatmap import blend_over_thumbnail, heatmap_for_thumbnail, write_heatmap_png
from modeling.slide.tile_geojson import write_tiles_geojson

EVIDENCE_SUFFIX = ".evidence"


def evidence_paths(out: str | Path, slide_id: str) -> tuple[Path, Path]:
    """(geojson, png) for OUT: a path prefix, or an existing folder (files named after the slide)."""
    out = Path(out)
    prefix = out / f"{slide_id}{EVIDENCE_SUFFIX}" if out.is_dir() else out
    return Path(f"{prefix}.geojson"), Path(f"{prefix}.png")


def measurements(evidence) -> dict:
    return {"relevance": evidence.relevance, "relevance_normalized": evidence.normalized()}


def write_evidence_files(evidence, out: str | Path) -> dict[str, Path]:
    """Write the GeoJSON and the PNG (each atomically); returns {"geojson": path, "png": path}."""
    geojson_path, png_path = evidence_paths(out, evidence.slide_id)
    write_tiles_geojson(geojson_path, evidence.layout, measurements(evidence), metadata=evidence.summary())
    write_heatmap_png(evidence.relevance, evidence.layout, png_path)
    return {"geojson": geojson_path, "png": png_path}


def explain_and_write(model, processor, slide_inputs, question: str, answer: str, out: str | Path,
                      history=(), progress=None, settings=None, template: str | None = None) -> dict[str, Path]:
    """Attribute `answer` to the tiles and write OUT.geojson / OUT.png; NoHeatmapError for released tokens."""
    from modeling.evidence import explain_answer

    evidence = explain_answer(model, processor, slide_inputs, history, question, answer, progress, settings,
                              template)
    return write_evidence_files(evidence, out)


def overview_overlay(evidence, thumbnail_size_px: tuple[int, int], opacity: float = 0.65) -> Image.Image:
    """RGBA overlay of `thumbnail_size_px` (width, height) for an overview of the whole slide."""
    return heatmap_for_thumbnail(evidence.relevance, evidence.layout, thumbnail_size_px, opacity)


def write_overview_overlay(evidence, thumbnail_size_px: tuple[int, int], path: str | Path,
                           opacity: float = 0.65) -> Path:
    """`overview_overlay` as an RGBA PNG, written atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        overview_overlay(evidence, thumbnail_size_px, opacity).save(tmp, format="PNG")
    return path


def blend_on_overview(evidence, thumbnail: Image.Image, opacity: float = 0.65) -> Image.Image:
    """The overview thumbnail with the heatmap composited over it (RGB, the thumbnail's size)."""
    return blend_over_thumbnail(thumbnail, evidence.relevance, evidence.layout, opacity)


def viewer_tiles(evidence) -> list[dict]:
    """Per-tile overlay values in level-0 px, in the order of the tiles (feature rows)."""
    boxes = evidence.layout.boxes_level0().tolist()
    normalized = evidence.normalized().tolist()
    return [{"x": x, "y": y, "w": w, "h": h, "relevance": float(value), "relevance_normalized": float(scaled)}
            for (x, y, w, h), value, scaled in zip(boxes, evidence.relevance.tolist(), normalized, strict=True)]
