#!/usr/bin/env bash
# DICOM tools from Debian's packages: dicom3tools' dciodvfy checks every SEG the tests write against the IOD
# (tests/clinical/test_dicom_seg.py; skipped with a reason where it is missing), dcmtk's dcmdump helps read
# what failed. Idempotent: installs only what is missing.
set -euo pipefail

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "ok installed"; }

packages=()
for package in dicom3tools dcmtk; do
  if installed "$package"; then
    echo "$package already installed"
  else
    packages+=("$package")
  fi
done
if [ ${#packages[@]} -gt 0 ]; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -q
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${packages[@]}"
fi
command -v dciodvfy
command -v dcmdump
