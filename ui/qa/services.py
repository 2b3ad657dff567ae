"""The services the Slide Q&A tab works with (app.py builds them): the model manager, per-session slide
state, the upload sandbox, live scoring, WSI-Bench examples and the server's slide listing.
No Gradio here; `ui.qa.layout` draws, `ui.qa.tab` wires, the handlers use these.

The slide viewer's registry (`viewer`, ui.viewer) is the app's one registry: the Curation review tab shows
its slides through it too, and app.py attaches its routes to the server. `slides_root` finds WSI-Bench
slides' own files (--slides-root) for the viewer.
"""

from dataclasses import dataclass

from ui.qa.examples import ExampleCatalog
from ui.qa.live_scoring import LiveScorer
from ui.qa.background import DONE, FAILED, BackgroundTask
from ui.qa.model_manager import READY, ModelManager
from modeling.slide.files import discover_slides
from ui.qa.slide_steps import PipelineSettings
from ui.qa.sessions import SlideQaSession, SlideSessions
from ui.qa.upload_sandbox import UploadSandbox
from ui.config import AppConfig
from ui.viewer.handles import ViewerRegistry
from ui.viewer.slides_root import SlidesRoot


@dataclass
class QaServices:
    config: AppConfig
    models: ModelManager
    sessions: SlideSessions
    sandbox: UploadSandbox
    scorer: LiveScorer
    catalog: ExampleCatalog | None = None
    examples: BackgroundTask | None = None        # catalog.load running in the background
    server_listing: BackgroundTask | None = None  # list_server_slides(allowed roots) running in the background
    viewer: ViewerRegistry | None = None          # the deep-zoom viewer's handles (None: overview only)
    slides_root: SlidesRoot | None = None         # --slides-root: WSI-Bench slide files for the viewer

    def __post_init__(self) -> None:
        if self.viewer is not None:                  # an ended session's slide leaves the viewer with it
            self.sessions.on_end.append(self._release_viewer)

    def _release_viewer(self, session: SlideQaSession) -> None:
        if session.viewer_handle is not None:
            self.viewer.release(session.session_id, session.viewer_handle)
            session.viewer_handle = None

    def pipeline(self, mpp_override: float | None = None) -> PipelineSettings:
        return PipelineSettings(tile_batch_size=self.config.tile_batch_size, tile_workers=self.config.tile_workers,
                                mpp_override=mpp_override or None)

    def ready_model(self, session: SlideQaSession):
        """The session's model when it is loaded, else None (nothing waits)."""
        if self.models.status(demo=session.use_demo).state == READY:
            return self.models.get(demo=session.use_demo)
        return None

    def server_slides(self) -> list[tuple[str, str]]:
        """The listed server slides as dropdown choices ([] until the listing is done)."""
        if self.server_listing is None or self.server_listing.state != DONE:
            return []
        return self.server_listing.result()

    @property
    def listings_final(self) -> bool:
        return all(task is None or task.state in (DONE, FAILED) for task in (self.examples, self.server_listing))


def list_server_slides(roots, report=lambda phase: None) -> list[tuple[str, str]]:
    """(label, path) of the slides under `roots` (files and DICOM folders, recursively)."""
    choices = []
    for root in roots:
        report(f"listing slides in {root}")
        for slide in discover_slides([root], recursive=True).slides:
            choices.append((f"{root.name}/{slide.path.relative_to(root)}", str(slide.path)))
    return choices
