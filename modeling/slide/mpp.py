"""Microns per pixel (MPP) of a slide's level 0: overrides, metadata, objective power, in that order.

Resolution order (first usable value wins; see `resolve_mpp`):
1. a per-slide override: a row of the `--mpp-csv` file (`slide,mpp`), else the global `--mpp` value;
2. slide metadata: `openslide.mpp-x/y` (Aperio MPP, NDPI/generic-TIFF resolution, DICOM pixel spacing),
   then the TIFF resolution tags (`tiff.XResolution` with a centimetre or inch unit), then the DPI a
   plain image (PNG pHYs, JPEG JFIF, TIFF) carries;
3. objective power (40x -> 0.25, 20x -> 0.5, i.e. 10 / power) only with `from_objective=True`
   (`--mpp-from-objective`): scanners differ by up to ~10% from the nominal value.

A slide with no usable MPP raises `MppError` naming the slide and the flags that fix it; nothing is
guessed silently. Metadata values outside `PLAUSIBLE_MPP_RANGE` are ignored as unusable: they are
screen or print resolutions (72 or 300 dpi), not microscope pixel sizes.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from modeling.slide.errors import MppError

PLAUSIBLE_MPP_RANGE = (0.05, 20.0)   # um/px accepted from metadata
OVERRIDE_MPP_RANGE = (0.01, 1000.0)  # um/px accepted from --mpp / --mpp-csv (the user knows best)
OVERRIDE_FLAGS = "--mpp (one value for every slide) or --mpp-csv (a `slide,mpp` file)"

_UNIT_TO_UM = {"centimeter": 10_000.0, "inch": 25_400.0, "millimeter": 1_000.0}


@dataclass(frozen=True)
class MppResolution:
    mpp: float                 # um/px at level 0 (mean of x and y)
    mpp_x: float
    mpp_y: float
    source: str                # "override:--mpp", "override:--mpp-csv", "openslide.mpp", "tiff-resolution",
                               # "image-dpi", "objective-power"


@dataclass(frozen=True)
class MppOverrides:
    """How MPP is resolved for a batch: the `--mpp`, `--mpp-csv` and `--mpp-from-objective` flags."""

    mpp: float | None = None                                   # one value for every slide
    table: Mapping[str, float] = field(default_factory=dict)   # slide id / file name -> mpp
    from_objective: bool = False
    csv_path: str | None = None

    def __post_init__(self):
        if self.mpp is not None:
            _check_override(self.mpp, "--mpp")

    @classmethod
    def from_flags(cls, mpp: float | None = None, mpp_csv: str | Path | None = None,
                   from_objective: bool = False) -> MppOverrides:
        table = load_mpp_csv(mpp_csv) if mpp_csv else {}
        return cls(mpp=mpp, table=table, from_objective=from_objective,
                   csv_path=str(mpp_csv) if mpp_csv else None)

    def override_for(self, slide_id: str, path: str | Path | None = None) -> tuple[float, str] | None:
        """The override for one slide, matched by slide id, file name or full path; else `--mpp`."""
        keys = [slide_id]
        if path is not None:
            keys += [Path(path).name, str(path), str(Path(path).resolve())]
        for key in keys:
            if key in self.table:
                return self.table[key], "override:--mpp-csv"
        if self.mpp is not None:
            return self.mpp, "override:--mpp"
        return None


def _check_override(value: float, where: str) -> float:
    low, high = OVERRIDE_MPP_RANGE
    if not (low <= value <= high):
        raise MppError(f"{where}: MPP {value} is outside {low}..{high} um/px; give microns per pixel "
                       "at level 0 (e.g. 0.25 for a 40x scan, 0.5 for 20x).")
    return float(value)


def load_mpp_csv(path: str | Path) -> dict[str, float]:
    """Read a `slide,mpp` CSV (header optional) into {slide: mpp}; `slide` is an id, file name or path."""
    from common.text_files import read_text   # UTF-8 (BOM dropped); bad bytes named by line and byte offset

    path = Path(path)
    text = read_text(path, error=MppError, label=f"--mpp-csv {path}")
    table: dict[str, float] = {}
    for number, row in enumerate(csv.reader(text.splitlines()), start=1):
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        if len(row) < 2:
            raise MppError(f"--mpp-csv {path}: line {number} has {len(row)} column(s); expected `slide,mpp`.")
        slide, value = row[0].strip(), row[1].strip()
        if number == 1 and slide.lower() in {"slide", "slide_id", "name", "path"}:
            continue  # header
        try:
            mpp = float(value)
        except ValueError as exc:
            raise MppError(f"--mpp-csv {path}: line {number}: mpp {value!r} is not a number.") from exc
        mpp = _check_override(mpp, f"--mpp-csv {path}: line {number}")
        if slide in table and table[slide] != mpp:
            raise MppError(f"--mpp-csv {path}: slide {slide!r} is listed twice with different MPPs.")
        table[slide] = mpp
    if not table:
        raise MppError(f"--mpp-csv {path}: no `slide,mpp` rows found.")
    return table


def _plausible(value: float | None) -> bool:
    low, high = PLAUSIBLE_MPP_RANGE
    return value is not None and low <= value <= high


def _float(properties: Mapping[str, str], key: str) -> float | None:
    try:
        value = float(properties[key])
    except (KeyError, TypeError, ValueError):
        return None
    return value if value > 0 else None


def metadata_mpp(properties: Mapping[str, str], image_dpi: tuple[float, float] | None = None
                 ) -> MppResolution | None:
    """MPP from slide metadata alone (no overrides, no objective power), or None when there is none."""
    mpp_x, mpp_y = _float(properties, "openslide.mpp-x"), _float(properties, "openslide.mpp-y")
    if _plausible(mpp_x):
        mpp_y = mpp_y if _plausible(mpp_y) else mpp_x
        return MppResolution((mpp_x + mpp_y) / 2, mpp_x, mpp_y, "openslide.mpp")
    scale = _UNIT_TO_UM.get(str(properties.get("tiff.ResolutionUnit", "")).lower())
    res_x, res_y = _float(properties, "tiff.XResolution"), _float(properties, "tiff.YResolution")
    if scale and res_x:
        mpp_x = scale / res_x
        mpp_y = scale / res_y if res_y else mpp_x
        if _plausible(mpp_x) and _plausible(mpp_y):
            return MppResolution((mpp_x + mpp_y) / 2, mpp_x, mpp_y, "tiff-resolution")
    if image_dpi and image_dpi[0] and image_dpi[0] > 0:
        dpi_y = image_dpi[1] if image_dpi[1] and image_dpi[1] > 0 else image_dpi[0]
        mpp_x, mpp_y = 25_400.0 / image_dpi[0], 25_400.0 / dpi_y
        if _plausible(mpp_x) and _plausible(mpp_y):
            return MppResolution((mpp_x + mpp_y) / 2, mpp_x, mpp_y, "image-dpi")
    return None


def objective_power(properties: Mapping[str, str]) -> float | None:
    return _float(properties, "openslide.objective-power")


def resolve_mpp(slide_name: str, properties: Mapping[str, str], *, override: tuple[float, str] | None = None,
                from_objective: bool = False, image_dpi: tuple[float, float] | None = None) -> MppResolution:
    """Level-0 MPP by the documented order; raises `MppError` naming the slide and the fix."""
    if override is not None:
        value, source = override
        value = _check_override(value, source)
        return MppResolution(value, value, value, source)
    found = metadata_mpp(properties, image_dpi)
    if found is not None:
        return found
    power = objective_power(properties)
    if from_objective and power:
        value = 10.0 / power
        return MppResolution(value, value, value, "objective-power")
    hint = (f" Its objective power is {power:g}x: pass --mpp-from-objective to use {10.0 / power:g} um/px."
            if power else "")
    raise MppError(f"{slide_name}: no usable microns-per-pixel in the slide metadata (no openslide.mpp-x, "
                   f"no TIFF resolution in cm/inch).{hint} Give it with {OVERRIDE_FLAGS}.")
