"""Uploaded slides on disk: one private temporary folder per browser session, slide types only, a size
limit, multi-file slides (DICOM, MIRAX, VMS) as a .zip or a folder, and no path outside allowed roots.

    sandbox = UploadSandbox(Path("/tmp/wsi-llava-uploads"), max_bytes=4 << 30, incoming_roots=[gradio_cache])
    slide = sandbox.accept(session_id, "/tmp/gradio/3f.../slide.svs")    # linked into the session's folder
    slide = sandbox.accept_folder(session_id, [".../1.dcm", ".../2.dcm"])  # a DICOM folder, file by file
    sandbox.discard(session_id)                                            # the session's folder is deleted
    path = confine("slides/a.svs", roots=[Path("/data/slides")])           # PathNotAllowedError outside

A session keeps one slide at a time: accepting a new one deletes the previous one. A .zip is unpacked
safely (no absolute or `..` member paths, no links, bounded size and member count) and must hold one
slide: a DICOM WSI (its .dcm instances) or one slide file with its companion files. Every refusal is an
`UploadError` (a `SlideError`) that names the file and the rule; paths outside the roots are a
`PathNotAllowedError`.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Iterable, Sequence

from modeling.slide.errors import SlideError
from modeling.slide.files import (
    OPENSLIDE_EXTENSIONS,
    PLAIN_IMAGE_EXTENSIONS,
    SLIDE_EXTENSIONS,
    sniff,
)

ARCHIVE_SUFFIXES = (".zip",)
UPLOAD_SUFFIXES = tuple(sorted(set(SLIDE_EXTENSIONS) | set(ARCHIVE_SUFFIXES)))
MAX_ARCHIVE_MEMBERS = 50_000
DEFAULT_MAX_UPLOAD_MB = 4096             # the app's --max-upload-mb default (ui.config reads it)
UPLOAD_ROOT_PREFIX = "wsi-llava-uploads-"        # + "<pid>-<random>": a process's own temp upload folder
_SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._+-]")


class UploadError(SlideError):
    """An upload that is refused: wrong type, too large, an unsafe or unusable archive."""


class PathNotAllowedError(SlideError):
    """A user-supplied path that resolves outside the configured roots."""


def confine(path: str | Path, roots: Iterable[str | Path], what: str = "path") -> Path:
    """`path` resolved (symlinks followed); PathNotAllowedError unless it lies inside one of `roots`.

    A relative path is taken relative to each root in turn."""
    roots = [Path(root).resolve() for root in roots]
    candidates = [Path(path)] if Path(path).is_absolute() else [root / path for root in roots]
    for candidate in candidates:
        resolved = candidate.resolve()
        if any(resolved == root or resolved.is_relative_to(root) for root in roots):
            return resolved
    raise PathNotAllowedError(f"{what} {str(path)!r} is outside the folders this server may read "
                              f"({len(roots)} configured); it was not opened.")


def new_upload_root(parent: str | Path | None = None) -> Path:
    """A fresh upload folder for this process in the temp dir, named after its pid (see the sweep below)."""
    return Path(tempfile.mkdtemp(prefix=f"{UPLOAD_ROOT_PREFIX}{os.getpid()}-", dir=parent))


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:          # someone else's process: alive
        return True
    return True


def remove_orphaned_upload_roots(parent: str | Path | None = None) -> list[Path]:
    """Delete upload folders left in the temp dir by app processes that died without cleaning up (killed,
    crashed, power loss): named `wsi-llava-uploads-<pid>-*`, owned by this user, their process gone."""
    parent = Path(parent or tempfile.gettempdir())
    removed = []
    for folder in sorted(parent.glob(f"{UPLOAD_ROOT_PREFIX}*-*")):
        match = re.match(rf"{re.escape(UPLOAD_ROOT_PREFIX)}(\d+)-", folder.name)
        if not match or folder.is_symlink() or not folder.is_dir() or folder.stat().st_uid != os.getuid():
            continue
        pid = int(match.group(1))
        if pid != os.getpid() and not _process_alive(pid):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def safe_name(name: str) -> str:
    """A file name reduced to letters, digits and `._+-` (no separators, no leading dot)."""
    cleaned = _UNSAFE_NAME_CHARS.sub("_", Path(name).name).lstrip(".")
    return cleaned[:200] or "upload"


def human_size(n_bytes: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n_bytes < 1024 or unit == "GB":
            return f"{n_bytes:.0f} {unit}" if unit == "bytes" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1024
    return f"{n_bytes:.1f} GB"


def _is_dicom(path: Path) -> bool:
    return path.suffix.lower() == ".dcm" or (not path.suffix and sniff(path) == "dicom")


class UploadSandbox:
    def __init__(self, root: str | Path, max_bytes: int, incoming_roots: Sequence[str | Path]):
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.incoming_roots = [Path(p) for p in incoming_roots]

    # -- session folders ---------------------------------------------------------------------------
    def session_dir(self, session_id: str) -> Path:
        if not _SESSION_ID.match(session_id or ""):
            raise UploadError(f"invalid session id {session_id!r}")
        return self.root / session_id

    def _fresh_slot(self, session_id: str) -> Path:
        """The session's folder emptied (one slide per session), with a new slot folder in it."""
        folder = self.session_dir(session_id)
        shutil.rmtree(folder, ignore_errors=True)
        slot = folder / "slide"
        slot.mkdir(parents=True)
        folder.chmod(0o700)
        return slot

    def discard(self, session_id: str) -> bool:
        """Delete the session's folder; True if there was one."""
        folder = self.session_dir(session_id)
        existed = folder.exists()
        shutil.rmtree(folder, ignore_errors=True)
        return existed

    def public_message(self, text: str) -> str:
        """`text` with the server's upload folders removed: people see their file's name, not our paths."""
        for root in {str(self.root), str(self.root.resolve())}:
            text = re.sub(re.escape(root) + r"/[A-Za-z0-9_-]+/slide/(unpacked/|dicom/)?", "", text)
        return text

    def discard_older_than(self, seconds: float) -> list[str]:
        """Delete session folders untouched for `seconds` (left by an earlier process); returns their ids."""
        cutoff = time.time() - seconds
        stale = [sid for sid in self.sessions() if (self.root / sid).stat().st_mtime < cutoff]
        for session_id in stale:
            self.discard(session_id)
        return stale

    def sessions(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if p.is_dir()) if self.root.is_dir() else []

    # -- checks ------------------------------------------------------------------------------------
    def _incoming(self, path: str | Path) -> Path:
        source = confine(path, self.incoming_roots, what="uploaded file")
        if not source.is_file():
            raise UploadError(f"{Path(path).name}: the uploaded file is no longer on the server; upload it again.")
        return source

    def _check_size(self, name: str, size: int) -> None:
        if size > self.max_bytes:
            raise UploadError(f"{name}: {human_size(size)} is over this server's upload limit of "
                              f"{human_size(self.max_bytes)}.")

    @staticmethod
    def _check_type(name: str) -> str:
        lower = name.lower()
        suffix = next((s for s in UPLOAD_SUFFIXES if lower.endswith(s)), None)
        if suffix is None:
            raise UploadError(f"{name}: not a slide type this server accepts; accepted: "
                              f"{', '.join(UPLOAD_SUFFIXES)} (multi-file slides such as DICOM as a .zip).")
        return suffix

    # -- accepting ---------------------------------------------------------------------------------
    def accept(self, session_id: str, upload: str | Path, original_name: str | None = None) -> Path:
        """Take one uploaded file (a slide or a .zip of one) into the session's folder; returns the slide path."""
        source = self._incoming(upload)
        name = safe_name(original_name or source.name)
        suffix = self._check_type(name)
        self._check_size(name, source.stat().st_size)
        slot = self._fresh_slot(session_id)
        target = slot / name
        _take(source, target)
        if suffix in ARCHIVE_SUFFIXES:
            extracted = slot / "unpacked"
            self._unzip(target, extracted)
            target.unlink()
            return self._slide_in(extracted, name)
        return target

    def accept_folder(self, session_id: str, uploads: Sequence[str | Path]) -> Path:
        """A folder uploaded file by file (a DICOM WSI): every file must be DICOM; returns the folder."""
        sources = [self._incoming(p) for p in uploads]
        if not sources:
            raise UploadError("the uploaded folder is empty.")
        not_dicom = [p.name for p in sources if not _is_dicom(p)]
        if not_dicom:
            raise UploadError(f"a folder upload must be a DICOM WSI (only .dcm or DICOM files); these are not: "
                              f"{', '.join(not_dicom[:5])}{' ...' if len(not_dicom) > 5 else ''}. Upload other "
                              "slides as one file (or a .zip).")
        self._check_size("the folder", sum(p.stat().st_size for p in sources))
        folder = self._fresh_slot(session_id) / "dicom"
        folder.mkdir()
        for index, source in enumerate(sources):
            name = safe_name(source.name)
            target = folder / name if not (folder / name).exists() else folder / f"{index}-{name}"
            _take(source, target)
        return folder

    def _unzip(self, archive: Path, out: Path) -> None:
        try:
            with zipfile.ZipFile(archive) as zf:
                members = [m for m in zf.infolist() if not m.is_dir()]
                if len(members) > MAX_ARCHIVE_MEMBERS:
                    raise UploadError(f"{archive.name}: {len(members)} files; at most {MAX_ARCHIVE_MEMBERS}.")
                self._check_size(f"{archive.name} (unpacked)", sum(m.file_size for m in members))
                out_root = out.resolve()
                for member in members:
                    mode = member.external_attr >> 16
                    if stat.S_ISLNK(mode):
                        raise UploadError(f"{archive.name}: member {member.filename!r} is a link; links are refused.")
                    parts = Path(member.filename.replace("\\", "/")).parts
                    if not parts or member.filename.startswith(("/", "\\")) or ".." in parts or ":" in parts[0]:
                        raise UploadError(f"{archive.name}: member {member.filename!r} has an unsafe path.")
                    target = (out / Path(*[safe_name(p) for p in parts])).resolve()
                    if not target.is_relative_to(out_root):
                        raise UploadError(f"{archive.name}: member {member.filename!r} has an unsafe path.")
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with zf.open(member) as src, open(target, "wb") as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)
        except zipfile.BadZipFile as exc:
            raise UploadError(f"{archive.name}: not a readable .zip archive ({exc}).") from exc

    @staticmethod
    def _slide_in(folder: Path, archive_name: str) -> Path:
        """The one slide an unpacked archive holds: its DICOM folder, or its one slide file."""
        files = [p for p in folder.rglob("*") if p.is_file()]
        dicom_dirs = sorted({p.parent for p in files if _is_dicom(p)})
        if len(dicom_dirs) == 1:
            return dicom_dirs[0]
        if len(dicom_dirs) > 1:
            raise UploadError(f"{archive_name}: DICOM files in {len(dicom_dirs)} folders; a .zip must hold one slide "
                              "(all instances of one DICOM WSI in one folder).")
        visible = [p for p in files if not p.name.startswith(".")]
        for suffixes in (OPENSLIDE_EXTENSIONS, PLAIN_IMAGE_EXTENSIONS):   # a .vms/.mrxs before its JPEG parts
            slides = [p for p in visible if p.suffix.lower() in suffixes]
            if len(slides) == 1:
                return slides[0]
            if slides:
                break
        listing = ", ".join(sorted(str(p.relative_to(folder)) for p in files)[:6]) or "nothing"
        raise UploadError(f"{archive_name}: expected one slide (a DICOM WSI folder or one slide file with its "
                          f"companion files), found {len(slides)} slide files; the archive holds: {listing}.")


def _take(source: Path, target: Path) -> None:
    """Give the session its own copy of an upload: a hard link when possible, else a copy.

    Gradio keeps uploads in a cache shared by content hash, so two sessions uploading the same bytes get
    the same cached file; moving it away would break the other session. Gradio deletes its cached copy
    itself (app.py sets `delete_cache`); the session's copy goes with the session's folder.
    """
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)
