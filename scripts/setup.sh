#!/usr/bin/env bash
# Create a virtualenv with everything the handler, the demo and the tests need, on one of the two
# library generations the project supports (README "Deploy"):
#   bash scripts/setup.sh                      # .venv, toolkit generation (requirements.txt)
#   GENERATION=current bash scripts/setup.sh   # .venv-current, current generation (requirements-current.txt)
# .venv is the toolkit generation because that is what requirements.txt (the default container's
# install) pins, and the whole suite runs there; .venv-current runs the tests whose outcome can
# depend on library versions (scripts/test.sh).
# torch is installed first and pinned: an unpinned torch would pull a multi-GB CUDA build here;
# the requirements keep a range that a container's preinstalled torch satisfies.
#   TORCH_VERSION=2.13.0                                         # the torch pinned (default 2.13.0)
#   TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu         # where torch comes from (default: pip's
#                                                                # own index; PyTorch's CPU index skips CUDA)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
case "${GENERATION:-toolkit}" in
  # the local server runs on both starlette majors: 0.x as in the toolkit image, 1.x as hf-serve 0.2 needs
  toolkit) venv=.venv; runtime=requirements.txt; server="starlette<1.0" ;;
  current) venv=.venv-current; runtime=requirements-current.txt; server="starlette>=1.0" ;;
  *) echo "GENERATION must be toolkit or current, not ${GENERATION}" >&2; exit 2 ;;
esac
if [ ! -x "$venv/bin/python" ]; then
  "$PYTHON" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} "torch==${TORCH_VERSION:-2.13.0}"
"$venv/bin/python" -m pip install --quiet -r "$runtime" -r requirements-dev.txt "$server"
# the project itself, editable: the `video-endpoint` command (its dependencies are the files above)
"$venv/bin/python" -m pip install --quiet --no-deps --editable .
