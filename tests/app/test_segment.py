"""One upload's work off the event loop: safe IDs, and messages that keep the server's paths to itself."""

from __future__ import annotations

import tempfile

import pytest

from skinnet.app.segment import image_id, public_text


def test_decoder_messages_lose_the_servers_temporary_paths() -> None:
    tmp = f"{tempfile.gettempdir()}/skinnet-upload-abc123"
    text = f"gs -q -sOutputFile={tmp}/out.png {tmp}/upload failed; see {tempfile.gettempdir()}/other"
    assert public_text(text, tmp, "lesion.jpg") == ("gs -q -sOutputFile=lesion.jpg lesion.jpg failed; "
                                                   "see <tmp>/other")


@pytest.mark.parametrize(("filename", "expected"), [
    ("ISIC_0000000.jpg", "ISIC_0000000"), ("C:\\Users\\me\\lesion 1.png", "lesion_1"),
    ("../../etc/passwd", "passwd"), ("..jpg", "image"), (None, "image"), ("a" * 300 + ".jpg", "a" * 100),
])
def test_upload_names_become_safe_ids(filename: str | None, expected: str) -> None:
    assert image_id(filename) == expected
