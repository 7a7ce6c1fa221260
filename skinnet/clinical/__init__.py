"""One image's clinical results: measurements, confidence, the overlay, its DICOM SEG and SR, and findings.

No run machinery here: batch runs (:mod:`skinnet.batch`), the DICOM node (:mod:`skinnet.node`) and the web app
(:mod:`skinnet.app`) call these.
"""
