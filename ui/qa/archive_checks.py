"""The checks an uploaded .zip passes before anything of it is listed into memory or unpacked (the upload
sandbox, `ui.qa.upload_sandbox`, calls them):

- `count_entries(path, limit)`: how many entries (files AND folders) the archive holds, read from its end
  record (classic or zip64) and confirmed by walking its central directory header by header, stopping at
  `limit + 1`. `zipfile.ZipFile` reads the whole central directory into ZipInfo objects when it opens an
  archive (300k folder entries: 159 MB), so this runs first, in constant memory.
- `ratio_refusal(members, archive_bytes, max_ratio)`: why the declared sizes unpack too far (a member, or the
  whole archive, over `max_ratio` unpacked bytes per compressed byte), or None.

    n_entries = count_entries(Path("slide.zip"), limit=50_000, max_directory_bytes=32 << 20)
    # -> ArchiveLimitError("... 300,001 entries ...") / zipfile.BadZipFile / the count

Layout facts (APPNOTE.TXT 4.3.12-4.3.16): the end of central directory record (22 bytes + a comment of up
to 65,535) holds the entry count and the directory's size; a zip64 archive has its zip64 end record and
locator right before it. The directory ends where those records begin (zipfile infers its start the same
way, which also covers data prepended to the archive).
"""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path

_END = struct.Struct("<4s4H2LH")               # signature, disks, entries here, entries, dir size, offset, comment
_END_SIGNATURE = b"PK\x05\x06"
_ZIP64_LOCATOR = struct.Struct("<4sLQL")       # signature, disk, zip64 end offset, disks
_ZIP64_LOCATOR_SIGNATURE = b"PK\x06\x07"
_ZIP64_END = struct.Struct("<4sQ2H2L4Q")       # signature, size, versions, disks, entries here, entries, size, offset
_ZIP64_END_SIGNATURE = b"PK\x06\x06"
_ENTRY = struct.Struct("<4s4B4HL2L5H2L")       # a central directory header (46 bytes) before name/extra/comment
_ENTRY_SIGNATURE = b"PK\x01\x02"
_MAX_COMMENT = 65_535


class ArchiveLimitError(ValueError):
    """An archive over a limit; the message says which and by how much (the sandbox adds the file's name)."""


def _directory_location(handle, file_size: int) -> tuple[int, int, int]:
    """(declared entry count, central directory start, its size in bytes) from the end record(s)."""
    tail_size = min(file_size, _END.size + _MAX_COMMENT)
    handle.seek(file_size - tail_size)
    tail = handle.read(tail_size)
    at = tail.rfind(_END_SIGNATURE)
    if at < 0 or len(tail) - at < _END.size:
        raise zipfile.BadZipFile("File is not a zip file")
    end_position = file_size - tail_size + at
    _, _, _, _, entries, directory_size, _, _ = _END.unpack(tail[at:at + _END.size])
    records_start = end_position
    locator_at = end_position - _ZIP64_LOCATOR.size
    if locator_at >= _ZIP64_END.size:
        handle.seek(locator_at)
        if handle.read(_ZIP64_LOCATOR.size)[:4] == _ZIP64_LOCATOR_SIGNATURE:
            handle.seek(locator_at - _ZIP64_END.size)
            record = handle.read(_ZIP64_END.size)
            if record[:4] != _ZIP64_END_SIGNATURE:
                raise zipfile.BadZipFile("Corrupt zip64 end of central directory record")
            fields = _ZIP64_END.unpack(record)
            entries, directory_size = fields[7], fields[8]
            records_start = locator_at - _ZIP64_END.size
    start = records_start - directory_size
    if start < 0:
        raise zipfile.BadZipFile("Bad central directory size or offset")
    return entries, start, directory_size


def count_entries(path: Path, limit: int, max_directory_bytes: int) -> int:
    """The number of entries of the archive at `path` (files and folders alike); ArchiveLimitError over `limit`
    entries or `max_directory_bytes` of central directory, zipfile.BadZipFile when it is not a readable zip.
    Reads at most `limit + 1` entry headers, one at a time."""
    with open(path, "rb") as handle:
        declared, start, size = _directory_location(handle, path.stat().st_size)
        if declared > limit:
            raise ArchiveLimitError(f"{declared:,} entries (files and folders); at most {limit:,} are accepted")
        if size > max_directory_bytes:
            raise ArchiveLimitError(f"a central directory of {size:,} bytes; at most {max_directory_bytes:,} are "
                                    "accepted")
        handle.seek(start)
        count, position, end = 0, start, start + size
        while position < end:
            header = handle.read(_ENTRY.size)
            if len(header) < _ENTRY.size or header[:4] != _ENTRY_SIGNATURE:
                raise zipfile.BadZipFile("Bad magic number for central directory")
            fields = _ENTRY.unpack(header)
            skip = fields[12] + fields[13] + fields[14]       # name, extra field and comment lengths
            handle.seek(skip, 1)
            position += _ENTRY.size + skip
            count += 1
            if count > limit:
                raise ArchiveLimitError(f"more than {limit:,} entries (files and folders); at most {limit:,} are "
                                        "accepted")
    return count


def ratio_refusal(members: list[zipfile.ZipInfo], archive_bytes: int, max_ratio: float,
                  floor_bytes: int) -> str | None:
    """Why `members` (their declared sizes) unpack too far for `max_ratio`, or None. Members, and the whole
    archive, unpacking to at most `floor_bytes` are not checked (small text files compress well)."""
    for member in members:
        ratio = member.file_size / max(member.compress_size, 1)
        if member.file_size > floor_bytes and ratio > max_ratio:
            return (f"member {member.filename!r} unpacks to {member.file_size:,} bytes from {member.compress_size:,} "
                    f"({ratio:,.0f}:1); at most {max_ratio:g}:1 is accepted")
    total = sum(member.file_size for member in members)
    ratio = total / max(archive_bytes, 1)
    if total > floor_bytes and ratio > max_ratio:
        return (f"it unpacks to {total:,} bytes from {archive_bytes:,} ({ratio:,.0f}:1); at most {max_ratio:g}:1 is "
                "accepted")
    return None
