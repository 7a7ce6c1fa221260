"""One image's clinical results, without run machinery: here, the DICOM measurement report (SR)."""
