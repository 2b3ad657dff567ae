"""Uploaded slides on disk: one private temporary folder per browser session, slide types only, a size
limit, a disk quota for all sessions together, multi-file slides (DICOM, MIRAX, VMS) as a .zip or a folder,
and no path outside allowed roots.

    sandbox = UploadSandbox(Path("/tmp/wsi-llava-uploads"), max_bytes=4 << 30, incoming_roots=[gradio_cache],
                            quota_bytes=None)      # None: half the free space of the folder's disk, at start-up
    slide = sandbox.accept(session_id, "/tmp/gradio/3f.../slide.svs")    # linked into the session's folder
    slide = sandbox.accept_folder(session_id, [".../1.dcm", ".../2.dcm"])  # a DICOM folder, file by file
    sandbox.discard(session_id)                                            # the session's folder is deleted
    path = confine("slides/a.svs", roots=[Path("/data/slides")])           # PathNotAllowedError outside

A session keeps one slide at a time: accepting a new one deletes the previous one. A .zip is unpacked
safely and must hold one slide: a DICOM WSI (its .dcm instances) or one slide file with its companion
files. Its limits, checked before anything is unpacked:
- at most `MAX_ARCHIVE_MEMBERS` entries, folders counted too; the count is read from the archive's end
  record and its central directory is walked entry by entry BEFORE `zipfile` lists it into memory (which
  it does all at once: 300k folder entries took 159 MB), and that directory is at most
  `MAX_CENTRAL_DIRECTORY_BYTES`;
- no absolute or `..` member paths, no links;
- the unpacked size within `max_bytes` (`--max-upload-mb`), from the sizes the archive declares (zipfile
  never writes more than a member's declared size, and a member that inflates differently fails its CRC);
- a compression ratio of at most `max_ratio` (`--max-zip-ratio`, default `DEFAULT_MAX_COMPRESSION_RATIO`)
  for every member and for the whole archive, once they unpack to more than `RATIO_FLOOR_BYTES` (slide
  data is compressed already, ~1:1; a highly compressible file is padding or a bomb).
Every upload (a file, a folder, an archive's unpacked size) must also fit the quota of all sessions
together (`quota_bytes`, `--upload-quota-gb`): what the session folders hold plus the uploads being taken
in, counted by file size. Every refusal is an `UploadError` (a `SlideError`) that names the file and the
rule; paths outside the roots are a `PathNotAllowedError`.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import stat
import tempfile
import threading
import time
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from modeling.slide.errors import SlideError
from modeling.slide.files import (
    OPENSLIDE_EXTENSIONS,
    PLAIN_IMAGE_EXTENSIONS,
    SLIDE_EXTENSIONS,
    sniff,
)
from ui.qa.archive_checks import ArchiveLimitError, count_entries, ratio_refusal

ARCHIVE_SUFFIXES = (".zip",)
UPLOAD_SUFFIXES = tuple(sorted(set(SLIDE_EXTENSIONS) | set(ARCHIVE_SUFFIXES)))
MAX_ARCHIVE_MEMBERS = 50_000            # entries of a .zip, files AND folders (a DICOM WSI has hundreds)
MAX_CENTRAL_DIRECTORY_BYTES = 32 << 20   # its listing: 50,000 entries with 600-character names
DEFAULT_MAX_UPLOAD_MB = 4096             # the app's --max-upload-mb default (ui.config reads it)
DEFAULT_MAX_COMPRESSION_RATIO = 100.0    # the app's --max-zip-ratio default: unpacked / compressed bytes
RATIO_FLOOR_BYTES = 1 << 20              # members (and archives) unpacking to less are not ratio-checked
DEFAULT_QUOTA_FRACTION = 0.5             # --upload-quota-gb auto: this share of the disk's free space at start-up
UPLOAD_ROOT_PREFIX = "wsi-llava-uploads-"        # + "<pid>-<random>": a process's own temp upload folder
_SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._+-]")
log = logging.getLogger("wsi_llava.app")


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


def default_quota_bytes(folder: str | Path, fraction: float = DEFAULT_QUOTA_FRACTION) -> int:
    """`fraction` of the free space of the disk holding `folder` (or its nearest existing parent), now."""
    folder = Path(folder).resolve()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return int(shutil.disk_usage(folder).free * fraction)


def folder_bytes(folder: Path) -> int:
    """The sizes of the files under `folder` added up (links not followed; files vanishing meanwhile skipped)."""
    total = 0
    for parent, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(parent, name)).st_size
            except OSError:
                pass
    return total


class UploadSandbox:
    def __init__(self, root: str | Path, max_bytes: int, incoming_roots: Sequence[str | Path],
                 quota_bytes: int | None = None, max_ratio: float = DEFAULT_MAX_COMPRESSION_RATIO):
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        if max_ratio < 1:
            raise ValueError(f"max_ratio must be at least 1, got {max_ratio}")
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.incoming_roots = [Path(p) for p in incoming_roots]
        self.quota_bytes = default_quota_bytes(self.root) if quota_bytes is None else int(quota_bytes)
        if self.quota_bytes < 1:
            raise ValueError(f"quota_bytes must be positive, got {self.quota_bytes}")
        self.max_ratio = float(max_ratio)
        self._reservations: dict[object, int] = {}       # uploads being taken in: bytes not on disk yet
        self._lock = threading.Lock()
        log.info("uploads: at most %s each, %s for all sessions together, zip ratio %g:1", human_size(max_bytes),
                 human_size(self.quota_bytes), self.max_ratio)

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

    @contextmanager
    def _reserved(self, session_id: str, n_bytes: int, name: str) -> Iterator[None]:
        """Room for `n_bytes` more within the quota of all sessions while an upload is taken in; UploadError
        when it would not fit. The session's own folder is not counted (it is emptied for the new slide)."""
        with self._lock:
            others = [sid for sid in self.sessions() if sid != session_id]
            held = sum(folder_bytes(self.root / sid) for sid in others) + sum(self._reservations.values())
            if held + n_bytes > self.quota_bytes:
                raise UploadError(f"{name}: this server's uploads hold {human_size(held)} of the "
                                  f"{human_size(self.quota_bytes)} all sessions may use together, and this upload "
                                  f"needs {human_size(n_bytes)} more. Try again later (uploads are deleted when "
                                  "their browser tab closes); the server's operator sets the quota (--upload-quota-gb).")
            key = object()
            self._reservations[key] = n_bytes
        try:
            yield
        finally:
            with self._lock:
                self._reservations.pop(key, None)

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
        """Take one uploaded file (a slide or a .zip of one) into the session's folder; returns the slide path.
        The session's previous slide is deleted first, also when this one is refused."""
        source = self._incoming(upload)
        name = safe_name(original_name or source.name)
        suffix = self._check_type(name)
        size = source.stat().st_size
        self._check_size(name, size)
        self.discard(session_id)
        if suffix in ARCHIVE_SUFFIXES:
            try:
                return self._accept_archive(session_id, source, name)
            except Exception:
                self.discard(session_id)          # nothing half-unpacked stays behind (nor counts to the quota)
                raise
        with self._reserved(session_id, size, name):
            target = self._fresh_slot(session_id) / name
            _take(source, target)
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
        size = sum(p.stat().st_size for p in sources)
        self._check_size("the folder", size)
        self.discard(session_id)
        with self._reserved(session_id, size, "the folder"):
            folder = self._fresh_slot(session_id) / "dicom"
            folder.mkdir()
            for index, source in enumerate(sources):
                name = safe_name(source.name)
                target = folder / name if not (folder / name).exists() else folder / f"{index}-{name}"
                _take(source, target)
        return folder

    def _accept_archive(self, session_id: str, archive: Path, name: str) -> Path:
        """Check the archive's entries, sizes and ratios, then unpack it straight into the session's folder."""
        try:
            count_entries(archive, MAX_ARCHIVE_MEMBERS, MAX_CENTRAL_DIRECTORY_BYTES)   # before zipfile lists it
            with zipfile.ZipFile(archive) as zf:
                members = zf.infolist()
                if len(members) > MAX_ARCHIVE_MEMBERS:
                    raise ArchiveLimitError(f"{len(members):,} entries (files and folders); at most "
                                            f"{MAX_ARCHIVE_MEMBERS:,} are accepted")
                files = [m for m in members if not m.is_dir()]
                unpacked = sum(m.file_size for m in files)
                self._check_size(f"{name} (unpacked)", unpacked)
                refusal = ratio_refusal(files, archive.stat().st_size, self.max_ratio, RATIO_FLOOR_BYTES)
                if refusal:
                    raise UploadError(f"{name}: {refusal} (slide data is compressed already; this server's "
                                      "operator sets the limit with --max-zip-ratio).")
                with self._reserved(session_id, unpacked, name):
                    extracted = self._fresh_slot(session_id) / "unpacked"
                    self._unpack(zf, files, extracted, name)
        except ArchiveLimitError as exc:
            raise UploadError(f"{name}: {exc}.") from exc
        except zipfile.BadZipFile as exc:
            raise UploadError(f"{name}: not a readable .zip archive ({exc}).") from exc
        return self._slide_in(extracted, name)

    @staticmethod
    def _unpack(zf: zipfile.ZipFile, members: list[zipfile.ZipInfo], out: Path, name: str) -> None:
        out.mkdir(parents=True, exist_ok=True)
        out_root = out.resolve()
        for member in members:
            mode = member.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise UploadError(f"{name}: member {member.filename!r} is a link; links are refused.")
            parts = Path(member.filename.replace("\\", "/")).parts
            if not parts or member.filename.startswith(("/", "\\")) or ".." in parts or ":" in parts[0]:
                raise UploadError(f"{name}: member {member.filename!r} has an unsafe path.")
            target = (out / Path(*[safe_name(p) for p in parts])).resolve()
            if not target.is_relative_to(out_root):
                raise UploadError(f"{name}: member {member.filename!r} has an unsafe path.")
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(member) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)

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
