"""The viewer's settings and the one home of its defaults (the app's settings table reads them from here).

    settings = ViewerSettings(viewer_js=Path("/opt/js/openseadragon.min.js"), handle_ttl_s=7200)

Where the browser gets OpenSeadragon (`script_source`), first found wins:
1. `viewer_js` (the app's `--viewer-js PATH`): a local copy, served by the app itself, for machines whose
   browsers are offline;
2. the copy npm installed beside this file (`npm ci --prefix ui/viewer`, done by tests/run.sh), served by
   the app;
3. the pinned jsDelivr URL with its subresource-integrity hash (the browser refuses any other bytes).
Where none loads, the viewer shows the slide's overview image and says why.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from pathlib import Path

OSD_VERSION = "6.1.1"                          # pinned in ui/viewer/package.json and package-lock.json
OSD_CDN_URL = f"https://cdn.jsdelivr.net/npm/openseadragon@{OSD_VERSION}/build/openseadragon/openseadragon.min.js"
# sha384 of build/openseadragon/openseadragon.min.js in the npm tarball openseadragon-6.1.1.tgz
OSD_CDN_SRI = "sha384-KKly+4vqqBHitr2XfNKWa3+0asIVpzYs2HijkM/zz0X6rgnyLuQEVERX9HqkM5/P"
NPM_PREFIX = Path(__file__).resolve().parent
NPM_OSD_FILE = NPM_PREFIX / "node_modules" / "openseadragon" / "build" / "openseadragon" / "openseadragon.min.js"
VIEWER_JS_FLAG = "--viewer-js"                 # the app flag (ui/config.py) that fills `viewer_js`
DEFAULT_VIEWER_JS = ""                         # the flag's default: none (npm copy, else the CDN)


@dataclass(frozen=True)
class ScriptSource:
    """Where the browser loads OpenSeadragon from: a file the app serves, or the CDN URL with its hash."""

    kind: str                      # "flag" | "npm" | "cdn"
    file: Path | None              # served at /viewer/assets/openseadragon.min.js ("flag", "npm")
    cdn_url: str = OSD_CDN_URL
    integrity: str = OSD_CDN_SRI


def viewer_js_problem(path) -> str | None:
    """What is wrong with a --viewer-js path (None: it is a file), with the fix."""
    if Path(path).expanduser().is_file():
        return None
    return (f"{path} is not a file; give the path of an openseadragon.min.js ({OSD_VERSION}), e.g. from "
            f"`npm pack openseadragon@{OSD_VERSION}`.")


@dataclass(frozen=True)
class ViewerSettings:
    viewer_js: Path | None = None          # --viewer-js: a local openseadragon.min.js (6.x)
    tile_size_px: int = 254                # Deep Zoom tile side without overlap (254 + 2 x 1 = 256)
    overlap_px: int = 1
    jpeg_quality: int = 75
    cache_bytes: int = 64 * 1024 * 1024    # encoded tiles kept in memory, all slides together
    decoded_cache_bytes: int = 256 * 1024 * 1024   # OpenSlide's decoded slide tiles, all slides together
    direct_jpeg: bool = True               # JPEG-tiled TIFFs decoded from their tiles (ui.viewer.direct_tiles)
    direct_cache_bytes: int = 192 * 1024 * 1024    # ... and the slide tiles it decoded, all slides together
    max_tile_read_px: int = 4096 * 4096    # pixels one tile may read (decoded); more: not drawn, "zoom in"
    handle_ttl_s: float = 7200.0           # a handle unused this long expires (the app passes its session TTL)
    max_handles_per_session: int = 4       # the oldest goes when a session opens more
    rate_per_s: float = 100.0              # requests per session per second, sustained ...
    rate_burst: int = 400                  # ... and in a burst (a fast zoom through a large slide)
    max_grid_tiles: int = 500_000          # kept-tile overlay entries
    max_heatmap_cells: int = 500_000       # heatmap overlay entries
    overview_max_px: int = 1024            # the fallback overview image's longer side

    def __post_init__(self):
        if self.viewer_js is not None and (problem := viewer_js_problem(self.viewer_js)):
            raise ValueError(f"{VIEWER_JS_FLAG} {problem}")
        if self.tile_size_px < 64 or self.tile_size_px > 2048:
            raise ValueError(f"tile_size_px {self.tile_size_px} must be in 64..2048")
        if not 0 <= self.overlap_px <= 8:
            raise ValueError(f"overlap_px {self.overlap_px} must be in 0..8")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality {self.jpeg_quality} must be in 1..100")
        for name in ("cache_bytes", "handle_ttl_s", "max_handles_per_session", "rate_per_s", "rate_burst",
                     "max_grid_tiles", "max_heatmap_cells", "overview_max_px"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")

    def script_source(self) -> ScriptSource:
        if self.viewer_js is not None:
            return ScriptSource("flag", Path(self.viewer_js))
        if NPM_OSD_FILE.is_file():
            return ScriptSource("npm", NPM_OSD_FILE)
        return ScriptSource("cdn", None)


def sri_sha384(path: Path) -> str:
    """The subresource-integrity value of a file (`sha384-<base64>`), as `OSD_CDN_SRI` was computed."""
    digest = hashlib.sha384(Path(path).read_bytes()).digest()
    return "sha384-" + base64.b64encode(digest).decode("ascii")
