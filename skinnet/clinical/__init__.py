"""One image's clinical results: measurements, confidence, the overlay, its DICOM SEG and findings.

No run machinery here: batch runs (:mod:`skinnet.batch`) and the web app (:mod:`skinnet.app`) call these.
"""
