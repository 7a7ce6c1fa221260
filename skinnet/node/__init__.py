"""The DICOM node for the hospital network (``skinnet dicom-node``, docs/how-to/dicom.md).

Modules: :mod:`.config` (what the node is told), :mod:`.receive` (one C-STORE's bytes to a checked file,
bounded inflate), :mod:`.scp` (the pynetdicom Storage SCP), :mod:`.queue` (the queue on disk),
:mod:`.results` (an image's SEG and SR, with derived UIDs), :mod:`.senders` (C-STORE and STOW-RS delivery),
:mod:`.service` (the running node: receiving, segmenting, delivering, draining), :mod:`.dicomweb`
(DICOMweb inputs and ``--stow-to`` of ``skinnet predict``).
"""
