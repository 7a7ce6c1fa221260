# Sourced by the one-call GPU job scripts, from the repository root: the device machine has torch but not
# every package skinnet needs, so install the wheels carried in $WHEELS (default .whl) where present, and put
# the repository on PYTHONPATH. Needs PYTHON set; returns 2 if the wheels do not install.
WHEELS=${WHEELS:-.whl}
if [ -d "$WHEELS" ]; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    "$WHEELS"/*.whl || return 2
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD NO_ALBUMENTATIONS_UPDATE=1 PYTHONUNBUFFERED=1
