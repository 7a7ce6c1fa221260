#!/usr/bin/env bash
# The DICOM node's test peers, from Debian's packages: Orthanc and its DICOMweb plugin (the PACS the tests in
# tests/node/ send to and read back from), dcmtk (storescu, as a camera) and dicom3tools (dciodvfy, which
# validates every SEG and SR the tests make). Idempotent: installs only what is missing. The Python side
# (pynetdicom, dicomweb-client) is in requirements.txt.
set -euo pipefail

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "ok installed"; }

packages=(orthanc orthanc-dicomweb dcmtk dicom3tools)
missing=()
for package in "${packages[@]}"; do
  installed "$package" || missing+=("$package")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "${packages[*]} already installed"
else
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -q
  # The orthanc package also installs a system service; the tests start their own Orthanc on free ports.
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
Orthanc --version | sed -n 1p
dpkg -L orthanc-dicomweb | grep 'libOrthancDicomWeb.so$'
storescu --version | sed -n 1p
command -v dciodvfy
