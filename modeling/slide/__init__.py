"""The slide pipeline: any whole-slide image -> tissue -> tiles -> tile features.

Modules (each says how to use it):
- `reader`: `open_slide(path)` for every OpenSlide format, DICOM folders and plain images.
- `views`, `tiff_jpeg`: low-resolution whole-slide views (the tissue view), decoded straight from JPEG
  TIFF tiles at 1/2..1/8 where OpenSlide itself would decode them with libjpeg, else through OpenSlide.
- `mpp`: level-0 microns per pixel from overrides, metadata or objective power.
- `tissue`: Otsu tissue mask, contours, QuPath GeoJSON.
- `tiling`: `tile_slide(...)`, tiles at a target MPP in level-0 coordinates.
- `coords_h5`, `features_h5`: TRIDENT/CLAM-compatible coordinate and feature files.
- `thumbnail`: overview JPEG/PNG with contours and kept tiles.
- `tile_layout`, `heatmap`, `tile_geojson`: where tiles lie at level 0; per-tile values as an RGBA heatmap
  (PNG, overview overlay) and as QuPath tile measurements (GeoJSON), for evidence heatmaps.
- `features`: `extract_slide_features(...)` with DataLoader workers.
- `commands`, `batch`: the `wsi-llava tile` / `wsi-llava features` batch commands (shards: `common.shards`).
- `errors`: `SlideError` and its subclasses; `files`: file sniffing, discovery; `provenance`: version, times.

Submodules are imported explicitly (`from modeling.slide.reader import open_slide`) so that importing
the package stays cheap.
"""
