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


class LesionMeasurements(BaseModel):
    """Shape of the predicted mask in pixels (no physical scale); see skinnet.evaluation.measurements."""

    area_px: int = Field(description="Lesion pixels (the number of 255 pixels in the mask PNG).")
    area_percent: float = Field(description="Lesion area as a percentage of the image area.")
    perimeter_px: float = Field(description="Boundary length: Cauchy-Crofton estimate from lesion/background "
                                "transitions along 4 directions (0°, 45°, 90°, 135°); ~1% for round outlines, "
                                "about 5% short for straight edges along the pixel grid. The image border counts "
                                "as boundary where the lesion touches it.")
    equivalent_diameter_px: float = Field(description="Diameter of the disc of the same area, 2·sqrt(area/π).")
    major_axis_px: float = Field(description="Full major axis of the ellipse with the mask's second moments.")
    minor_axis_px: float = Field(description="Full minor axis of the ellipse with the mask's second moments.")
    orientation_deg: float | None = Field(description="Major axis angle, degrees counter-clockwise from the "
                                          "image x-axis, in (-90, 90]; null for an empty mask.")
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
    components: int = Field(description="Connected lesion regions (8-connected); all are measured together.")


class SegmentResult(BaseModel):
    id: str = Field(description="Image id: the uploaded file name without extension (sanitised).")
    mask_filename: str = Field(description="ISIC name of the mask, <id>_segmentation.png.")
    image: ImageSize = Field(description="Size of the uploaded image (after EXIF rotation) and of the mask.")
    threshold: float = Field(description="Lesion probability above which a pixel is lesion (the model's).")
    postprocess: list[str] = Field(description="Post-processing steps applied to the mask (saved with the model).")
    measurements: LesionMeasurements
    mask_png_base64: str = Field(description="The mask: single-channel PNG, 0 background / 255 lesion, base64.")
    seconds: float = Field(description="Decoding, inference and measuring time on the server.")


class Health(BaseModel):
    status: Literal["ok"]
    model: dict[str, int | str] = Field(description="Architecture and input size of the loaded network.")
    device: str
    workers: int = Field(description="Images segmented at the same time.")
    queue_size: int = Field(description="Requests admitted at once (running + waiting); more get 503.")
    in_flight: int = Field(description="Requests admitted now.")
    max_upload_bytes: int
