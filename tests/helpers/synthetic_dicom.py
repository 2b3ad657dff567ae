"""A writer of small synthetic DICOM WSI folders (pydicom), the tissue of tests.helpers.synthetic_slides.

    slide = write_dicom_folder(tmp_path / "dicom-slide", width=2048, height=2048, mpp=0.5)
    open_slide(slide.path)                  # OpenSlide vendor "dicom", two levels, MPP 0.5

One VL Whole Slide Microscopy image (SOP class 1.2.840.10008.5.1.4.1.1.77.1.6) per pyramid level, all in
one series: ImageType ORIGINAL/PRIMARY/VOLUME/NONE, TILED_FULL tiles of 256 px, JPEG baseline frames
(YBR_FULL_422), the pixel spacing in the shared functional groups. OpenSlide 4 opens the folder's first
file and finds the other levels itself.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from tests.helpers.synthetic_slides import TILE_PX, SyntheticSlide, _make_slide

VL_WSI_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.77.1.6"


def _jpeg_frames(pixels: np.ndarray, tile_px: int) -> list[bytes]:
    from PIL import Image

    height, width = pixels.shape[:2]
    frames = []
    for row in range(-(-height // tile_px)):
        for col in range(-(-width // tile_px)):
            tile = np.full((tile_px, tile_px, 3), 255, np.uint8)
            part = pixels[row * tile_px:(row + 1) * tile_px, col * tile_px:(col + 1) * tile_px]
            tile[:part.shape[0], :part.shape[1]] = part
            buffer = io.BytesIO()
            Image.fromarray(tile).save(buffer, "JPEG", quality=90)
            frames.append(buffer.getvalue())
    return frames


def _level_dataset(pixels: np.ndarray, index: int, mpp: float, uids: dict, tile_px: int):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.sequence import Sequence
    from pydicom.uid import JPEGBaseline8Bit, generate_uid

    height, width = pixels.shape[:2]
    frames = _jpeg_frames(pixels, tile_px)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = VL_WSI_SOP_CLASS
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = VL_WSI_SOP_CLASS, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = uids["study"], uids["series"]
    ds.FrameOfReferenceUID = uids["frame"]
    ds.Modality, ds.ImageType, ds.InstanceNumber = "SM", ["ORIGINAL", "PRIMARY", "VOLUME", "NONE"], index + 1
    ds.PatientName, ds.PatientID = "Synthetic", "SYNTHETIC"
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "YBR_FULL_422", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.Rows = ds.Columns = tile_px
    ds.NumberOfFrames = len(frames)
    ds.TotalPixelMatrixColumns, ds.TotalPixelMatrixRows = width, height
    ds.TotalPixelMatrixFocalPlanes, ds.NumberOfOpticalPaths = 1, 1
    ds.DimensionOrganizationType = "TILED_FULL"
    ds.ImagedVolumeWidth, ds.ImagedVolumeHeight, ds.ImagedVolumeDepth = width * mpp / 1000, height * mpp / 1000, 0.001
    measures = Dataset()
    measures.PixelSpacing, measures.SliceThickness = [mpp / 1000, mpp / 1000], 0.001        # mm
    shared = Dataset()
    shared.PixelMeasuresSequence = Sequence([measures])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    optical = Dataset()
    optical.OpticalPathIdentifier = "1"
    ds.OpticalPathSequence = Sequence([optical])
    ds.LossyImageCompression = "01"
    ds.PixelData = encapsulate(frames)
    ds["PixelData"].VR = "OB"
    return ds


def write_dicom_folder(path, width: int = 2048, height: int = 2048, mpp: float = 0.5, downsamples=(1, 4),
                       seed: int = 0, tile_px: int = TILE_PX) -> SyntheticSlide:
    """A DICOM WSI folder `path` with one file per level (`level-<i>.dcm`)."""
    from pydicom.uid import generate_uid

    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    slide = _make_slide(folder, width, height, mpp, downsamples, None, seed, None)
    uids = {"study": generate_uid(), "series": generate_uid(), "frame": generate_uid()}
    for index, downsample in enumerate(slide.downsamples):
        level_w, level_h = max(1, width // downsample), max(1, height // downsample)
        pixels = slide.render(0, 0, level_w, level_h, downsample)
        _level_dataset(pixels, index, mpp * downsample, uids, tile_px).save_as(
            folder / f"level-{index}.dcm", enforce_file_format=True)
    return slide
