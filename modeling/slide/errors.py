"""The slide pipeline's exception types: every user-facing failure in `modeling/slide/` raises one.

`SlideError` is the base; callers that only want to report a failure catch it. The subclasses let a
batch runner or the app react to the kind of failure (a missing file, a file that is not a readable
slide, a tile that cannot be decoded, a slide without a usable resolution, a bad coordinates file).
Every message names the slide (or file) and the reason, and where there is one, the fix.
"""

from __future__ import annotations


class SlideError(Exception):
    """A slide, or a file about a slide, that the pipeline cannot use; the message says why."""


class SlideNotFoundError(SlideError):
    """The path does not exist."""


class SlideFormatError(SlideError):
    """The file exists but is not a slide we can open: empty, not an image, truncated or corrupt."""


class SlideReadError(SlideError):
    """The slide opened, but a region could not be read (a corrupt tile, an I/O error)."""


class MppError(SlideError):
    """No usable microns-per-pixel for a slide, or an invalid MPP override (--mpp, --mpp-csv)."""


class NoTissueError(SlideError):
    """Tissue detection found nothing to tile (blank slide, or thresholds too strict)."""


class CoordsFileError(SlideError):
    """A coordinates or features h5 file that is missing, malformed or made with other settings."""
