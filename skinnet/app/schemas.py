"""The JSON shapes of the API; their field descriptions are the API documentation (OpenAPI, /docs)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class ErrorBody(BaseModel):
    detail: str = Field(description="What is wrong, for people.")
    code: str = Field(description="For programs: bad_request, too_large, invalid_image, busy, internal_error, ...")


class ImageSize(BaseModel):
    width: int
    height: int


MM = " In millimetres where the pixel spacing is known (DICOM PixelSpacing or ImagerPixelSpacing, or the " \
     "pixel_spacing_mm field), else null."


class LesionMeasurements(BaseModel):
    """Shape and colour of the predicted lesion (scikit-image regionprops and the project's asymmetry score);
    lengths in pixels and, where the pixel spacing is known, in millimetres. See
    skinnet.clinical.measurements."""

    area_px: int = Field(description="Lesion pixels (the number of 255 pixels in the mask PNG).")
    area_percent: float = Field(description="Lesion area as a percentage of the image area.")
    perimeter_px: float = Field(description="Boundary length: Cauchy-Crofton estimate (regionprops "
                                "perimeter_crofton, 4 directions); ~1% for round outlines, about 5% short for "
                                "straight edges along the pixel grid. The image border counts as boundary where "
                                "the lesion touches it.")
    equivalent_diameter_px: float = Field(description="Diameter of the disc of the same area, 2·sqrt(area/π).")
    max_diameter_px: float = Field(description="Maximum Feret (caliper) diameter: the longest distance between "
                                   "two points of the outline of the lesion's convex hull (regionprops "
                                   "feret_diameter_max); the 'D' of the ABCD rule.")
    major_axis_px: float = Field(description="Full major axis of the ellipse with the mask's second moments.")
    minor_axis_px: float = Field(description="Full minor axis of the ellipse with the mask's second moments.")
    pixel_spacing_mm: list[float] | None = Field(description="[row, column] spacing in mm used for the *_mm "
                                                 "fields; null where unknown.")
    area_mm2: float | None = Field(description="Lesion area in mm²." + MM)
    perimeter_mm: float | None = Field(description="Perimeter in mm (square pixels only)." + MM)
    equivalent_diameter_mm: float | None = Field(description="Equivalent diameter in mm." + MM)
    max_diameter_mm: float | None = Field(description="Maximum (Feret) diameter in mm; the dermoscopy D "
                                          "criterion is > 6 mm." + MM)
    major_axis_mm: float | None = Field(description="Major axis in mm." + MM)
    minor_axis_mm: float | None = Field(description="Minor axis in mm." + MM)
    orientation_deg: float | None = Field(description="Major axis angle, degrees counter-clockwise from the "
                                          "image x-axis, in (-90, 90]; null for an empty mask.")
    eccentricity: float | None = Field(description="Of the moment ellipse, sqrt(1 - λ2/λ1): 0 for a disc, "
                                       "towards 1 for elongated lesions.")
    solidity: float | None = Field(description="Lesion area over its convex hull's: 1 for convex outlines, "
                                   "lower for notched or lobed ones.")
    asymmetry: float | None = Field(description="Fraction of the lesion area not covered by its mirror image "
                                    "about an axis through the centroid, averaged over two perpendicular axes: "
                                    "the pair that minimises it (the lesion's own axes). 0 = symmetric about "
                                    "both, towards 1 = lopsided; null for an empty mask.")
    asymmetry_axis_deg: float | None = Field(description="Angle of the more symmetric axis of that pair, degrees "
                                             "counter-clockwise from the image x-axis, in (-90, 90].")
    asymmetry_about_axis: float | None = Field(description="The mirror mismatch about that axis alone.")
    asymmetry_about_perpendicular: float | None = Field(description="The mismatch about the perpendicular axis.")
    compactness: float | None = Field(description="Border irregularity perimeter²/(4π·area): 1 for a disc, larger "
                                      "for elongated or ragged borders; null for an empty mask.")
    colour_variegation_delta_e: float | None = Field(description="Colour variegation: standard deviation of the "
                                                     "lesion's colour in CIELAB, the RMS colour difference "
                                                     "ΔE*ab (CIE76) of its pixels from their mean; 0 for one "
                                                     "even colour. Null for an empty mask.")
    components: int = Field(description="Connected lesion regions (8-connected); all are measured together.")


class ConfidenceResult(BaseModel):
    """How far to trust the outline (skinnet.clinical.confidence)."""

    score: float = Field(description="In [0, 1], higher is surer: agreement of the flip views (tta) or the "
                         "probability margin along the outline (margin).")
    method: Literal["tta", "margin"] = Field(description="Which score (saved with the model).")
    threshold: float = Field(description="Below it the outline is flagged (saved with the model).")
    flagged: bool = Field(description="Check this outline: score below the threshold, or no outline at all.")
    reason: str | None = Field(description="Why it is flagged; null when it is not.")


class ModelIdentity(BaseModel):
    file: str = Field(description="The model file(s) the server loaded.")
    sha256: str = Field(description="SHA-256 of the model file(s), ';'-separated for several.")
    version: str = Field(description="The first 16 hex digits of the SHA-256: a short version.")
    runtime: str = Field(description="The backend and precision that ran, e.g. 'onnx int8' (the packaged int8 "
                         "copy on ONNX Runtime) or 'torch float32'; empty for a model held in memory.")


class SegmentResult(BaseModel):
    id: str = Field(description="Image id: the uploaded file name without extension (sanitised).")
    mask_filename: str = Field(description="ISIC name of the mask, <id>_segmentation.png.")
    image: ImageSize = Field(description="Size of the uploaded image (after EXIF rotation) and of the mask.")
    source_format: Literal["image", "dicom"] = Field(description="How the upload was read.")
    spacing_source: str | None = Field(description="Where the pixel spacing came from: PixelSpacing or "
                                       "ImagerPixelSpacing (the DICOM file's own, which wins), user (the "
                                       "pixel_spacing_mm field), or null (unknown: lengths in pixels only).")
    threshold: float = Field(description="Lesion probability above which a pixel is lesion (the model's).")
    postprocess: list[str] = Field(description="Post-processing steps applied to the mask (saved with the model).")
    measurements: LesionMeasurements
    confidence: ConfidenceResult
    model: ModelIdentity
    mask_png_base64: str = Field(description="The mask: single-channel PNG, 0 background / 255 lesion, base64.")
    uncertainty_png_base64: str | None = Field(description="With ?uncertainty=true: the per-pixel uncertainty, "
                                               "single-channel PNG, 0 sure to 255 unsure, base64; else null.")
    display_png_base64: str | None = Field(description="For DICOM uploads, which browsers cannot show: the "
                                           "image as decoded (RGB PNG, base64); else null.")
    seconds: float = Field(description="Decoding, inference, measuring and scoring time on the server.")


class Health(BaseModel):
    status: Literal["ok"]
    model: dict[str, int | float | str] = Field(description="Architecture and input size of the loaded network, "
                                                "its file, SHA-256 and runtime (backend and precision, e.g. "
                                                "'onnx int8'), the confidence method and threshold.")
    device: str
    workers: int = Field(description="Images segmented at the same time.")
    queue_size: int = Field(description="Requests admitted at once (running + waiting); more get 503.")
    in_flight: int = Field(description="Requests admitted now.")
    max_upload_bytes: int
