"""Slide files on disk: what a path holds, why it cannot be opened, and which inputs a batch covers.

- `sniff(path)` reads the first bytes and names the container (tiff, png, jpeg, dicom, ...).
- `diagnose_unopenable(path)` turns OpenSlide's generic "Unsupported or missing image file" into a
  reason a person can act on: empty file, truncated or corrupt TIFF, not an image at all.
- `dicom_folder_entry(path)` finds the file OpenSlide should open for a DICOM WSI folder.
- `discover_slides(inputs)` expands the SLIDE_OR_DIR arguments of the batch commands into slides with
  unique ids, and lists what it ignored so nothing is skipped silently.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from modeling.slide.errors import SlideError, SlideFormatError, SlideNotFoundError

# Extensions OpenSlide 4 reads, plus plain images for small test inputs. DICOM WSI are folders.
OPENSLIDE_EXTENSIONS = (".svs", ".tif", ".tiff", ".ndpi", ".vms", ".vmu", ".mrxs", ".scn", ".bif",
                        ".svslide", ".dcm")
PLAIN_IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
SLIDE_EXTENSIONS = OPENSLIDE_EXTENSIONS + PLAIN_IMAGE_EXTENSIONS
_MULTI_SUFFIXES = (".ome.tiff", ".ome.tif")

_TIFF_MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def sniff(path: str | Path) -> str:
    """'empty', 'tiff', 'png', 'jpeg', 'dicom', 'jpeg2000', 'text' or 'unknown' from the first bytes."""
    with open(path, "rb") as handle:
        head = handle.read(136)
    if not head:
        return "empty"
    if head[:4] in _TIFF_MAGICS:
        return "tiff"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[128:132] == b"DICM":
        return "dicom"
    if head.startswith((b"\x00\x00\x00\x0cjP  ", b"\xffO\xffQ")):
        return "jpeg2000"
    try:
        head.decode("utf-8")
        return "text"
    except UnicodeDecodeError:
        return "unknown"


def check_exists(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise SlideNotFoundError(f"{path}: no such file or directory.")
    return path


def diagnose_tiff(path: str | Path) -> str | None:
    """Why a TIFF is structurally broken (truncated, corrupt), or None when its structure is intact."""
    import tifffile

    size = os.path.getsize(path)
    logger = logging.getLogger("tifffile")            # it logs each bad offset; the reason we return says it
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        with tifffile.TiffFile(path) as tif:
            pages = list(tif.pages)
            if not pages:
                return "corrupt TIFF: no image directory (IFD) could be read"
            for index, page in enumerate(pages):
                ends = [offset + count for offset, count in zip(page.dataoffsets, page.databytecounts)]
                if ends and max(ends) > size:
                    return (f"truncated TIFF: page {index} needs image data up to byte {max(ends):,} but the "
                            f"file has only {size:,} bytes (incomplete download or copy?)")
    except Exception as exc:  # tifffile raises many types for damaged files; all mean "corrupt"
        return f"corrupt or truncated TIFF ({type(exc).__name__}: {exc})"
    finally:
        logger.setLevel(level)
    return None


def diagnose_unopenable(path: str | Path, openslide_reason: str) -> str:
    """A human reason for a file OpenSlide rejected (called after the plain-image fallback failed)."""
    kind = sniff(path)
    if kind == "empty":
        return "empty file (0 bytes)"
    if kind == "tiff":
        broken = diagnose_tiff(path)
        if broken:
            return broken
        return ("a TIFF that is neither a whole-slide format OpenSlide reads nor a small plain image "
                f"(OpenSlide: {openslide_reason})")
    if kind == "dicom":
        return ("a DICOM file OpenSlide cannot read as a whole-slide image (is it a VL Whole Slide "
                f"Microscopy image with all its instances in the same folder? OpenSlide: {openslide_reason})")
    if kind in {"text", "unknown", "jpeg2000"}:
        return (f"not a whole-slide image: the file content is {kind} (no TIFF/DICOM/PNG/JPEG signature); "
                f"readable formats: {', '.join(SLIDE_EXTENSIONS)} and DICOM folders")
    return f"unreadable {kind} image (OpenSlide: {openslide_reason})"


def is_dicom_folder(path: Path) -> bool:
    return path.is_dir() and dicom_folder_entry(path, required=False) is not None


def dicom_folder_entry(path: Path, required: bool = True) -> Path | None:
    """The file OpenSlide opens for a DICOM WSI folder (it finds the other instances itself)."""
    candidates = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() == ".dcm")
    if not candidates:
        candidates = sorted(p for p in path.iterdir() if p.is_file() and not p.suffix and sniff(p) == "dicom")
    if candidates:
        return candidates[0]
    if required:
        raise SlideFormatError(f"{path}: a folder, but not a DICOM WSI folder (no .dcm files); give a slide "
                               "file, or a folder of slides to the batch commands.")
    return None


def slide_id_for(path: str | Path) -> str:
    """The id outputs are named by: the file name without its extension (`.ome.tiff` counts as one)."""
    path = Path(path)
    if path.is_dir():                      # a DICOM WSI folder
        return path.name
    lower = path.name.lower()
    for suffix in _MULTI_SUFFIXES:
        if lower.endswith(suffix):
            return path.name[: -len(suffix)]
    return path.stem


@dataclass(frozen=True)
class SlideInput:
    slide_id: str
    path: Path


@dataclass
class Discovery:
    slides: list[SlideInput]
    ignored: list[str] = field(default_factory=list)   # files in given folders that are not slides


def _is_slide_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in SLIDE_EXTENSIONS and not path.name.startswith(".")


def discover_slides(inputs: list[str | Path], recursive: bool = False, exclude: list[str | Path] = ()) -> Discovery:
    """Expand files and folders into slides. A path given explicitly is always taken (a missing or
    non-slide file then fails with its reason, in the summary); a folder contributes its slide files and
    DICOM sub-folders, and its other files are listed in `ignored`. Paths under `exclude` (the output
    folder, when it lies inside an input folder) are never inputs."""
    excluded = [Path(p).resolve() for p in exclude]

    def is_excluded(entry: Path) -> bool:
        resolved = entry.resolve()
        return any(resolved == root or root in resolved.parents for root in excluded)

    slides: list[SlideInput] = []
    ignored: list[str] = []
    for raw in inputs:
        path = Path(raw)
        if not path.exists() or path.is_file() or is_dicom_folder(path):   # a missing path fails as its own slide
            slides.append(SlideInput(slide_id_for(path), path))
            continue
        walker = sorted(path.rglob("*")) if recursive else sorted(path.iterdir())
        mirax_data = {p.with_suffix("") for p in walker if p.suffix.lower() == ".mrxs"}
        for entry in walker:
            if is_excluded(entry):
                continue
            if _is_slide_file(entry) and entry.suffix.lower() != ".dcm":
                slides.append(SlideInput(slide_id_for(entry), entry))
            elif entry.is_dir() and entry not in mirax_data and is_dicom_folder(entry):
                slides.append(SlideInput(entry.name, entry))
            elif entry.is_file() and not entry.name.startswith(".") and entry.suffix.lower() != ".dcm" \
                    and not any(parent in mirax_data for parent in entry.parents):
                ignored.append(str(entry))
    seen: dict[str, Path] = {}
    unique: list[SlideInput] = []
    for item in slides:
        if item.slide_id in seen:
            if seen[item.slide_id].resolve() == item.path.resolve():
                continue
            raise SlideError(f"Two inputs have the same slide id {item.slide_id!r}: {seen[item.slide_id]} and "
                             f"{item.path}. Outputs are named by slide id; rename one or run them separately.")
        seen[item.slide_id] = item.path
        unique.append(item)
    return Discovery(sorted(unique, key=lambda s: s.slide_id), ignored)
