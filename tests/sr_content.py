"""Read back what a DICOM SR says, for tests of the SR writer and of the node that stores it."""

from __future__ import annotations

from typing import Any


def sr_content(sr: Any) -> dict[str, object]:
    """Concept name -> value of an SR's content tree: a NUM as (value, unit code), a CODE as its meaning, an IMAGE
    as (referenced SOP Instance UID, frame number), a TEXT as its text (every TEXT also under ``"texts"``); the
    first item of a name wins, but the last NUM."""
    out: dict[str, object] = {}

    def walk(items: Any) -> None:
        for item in items:
            name = item.ConceptNameCodeSequence[0].CodeMeaning
            if item.ValueType == "NUM":
                value = item.MeasuredValueSequence[0]
                out[name] = (float(value.NumericValue), value.MeasurementUnitsCodeSequence[0].CodeValue)
            elif item.ValueType == "CODE":
                out.setdefault(name, item.ConceptCodeSequence[0].CodeMeaning)
            elif item.ValueType == "IMAGE":
                reference = item.ReferencedSOPSequence[0]
                out.setdefault(name, (reference.ReferencedSOPInstanceUID, reference.get("ReferencedFrameNumber")))
            elif item.ValueType == "TEXT":
                out.setdefault(name, item.TextValue)
                texts = out.setdefault("texts", [])
                assert isinstance(texts, list)
                texts.append(item.TextValue)
            if "ContentSequence" in item:
                walk(item.ContentSequence)

    walk(sr.ContentSequence)
    return out
