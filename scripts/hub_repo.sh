#!/usr/bin/env bash
# Lay out in DIR the files an Inference Endpoint needs from this repository: exactly what to push
# to the Hub model repository (README "Deploy"), with the requirements.txt that the chosen
# container installs at start. DIR may already hold a diffusers checkpoint (model_index.json and its
# folders) or a clone of the Hub repository; nothing else there changes.
set -euo pipefail
usage() {
  cat <<'EOF'
usage: bash scripts/hub_repo.sh [--container NAME] DIR

Copies handler.py, video_endpoint/, pipelines/ and encoders/ into DIR and writes the
requirements.txt the container NAME installs at start:

  toolkit  (default) Inference Endpoints' toolkit image (huggingface-inference-toolkit 0.5.6):
           toolkit library generation (diffusers 0.39, transformers 4.57, huggingface_hub 0.36)
  hf-dlc   Hugging Face's PyTorch inference DLC (hf-serve 0.0.1rc7, transformers < 5):
           toolkit library generation
  hf-serve hf-serve 0.2 (transformers >= 5.19, huggingface_hub >= 1, Python 3.12):
           current library generation (diffusers 0.42, transformers 5, huggingface_hub 2)

and prints the environment variables that container needs.
EOF
}
container=toolkit
dest=""
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --container) container=${2:?--container needs a name: toolkit, hf-dlc or hf-serve}; shift 2 ;;
    --container=*) container=${1#--container=}; shift ;;
    -*) echo "unknown option: $1" >&2; usage >&2; exit 2 ;;
    *) [ -z "$dest" ] || { echo "one DIR only" >&2; exit 2; }; dest=$1; shift ;;
  esac
done
[ -n "$dest" ] || { usage >&2; exit 2; }
case "$container" in
  toolkit|hf-dlc) requirements=requirements.txt ;;
  hf-serve) requirements=requirements-current.txt ;;
  *) echo "unknown container: $container (toolkit, hf-dlc or hf-serve)" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/.."
# handler.py is the platform's entry point, the rest what it imports.
FILES=(handler.py video_endpoint pipelines encoders)
mkdir -p "$dest"
tar --create --exclude=__pycache__ --exclude='*.pyc' "${FILES[@]}" | tar --extract --directory "$dest"
cp "$requirements" "$dest/requirements.txt"
echo "laid out in $dest for the $container container: ${FILES[*]} requirements.txt (from $requirements)"
case "$container" in
  toolkit) echo "environment: none needed (create the Endpoint with the task Custom)" ;;
  hf-dlc|hf-serve)
    echo "environment (hf-serve loads a handler.py only with these):"
    echo "  HF_TASK=custom"
    echo "  HF_TRUST_REMOTE_CODE=1" ;;
esac
if [ "$container" = hf-dlc ]; then
  # the image's entrypoint passes `uv pip install` a flag uv refuses, and stops before hf-serve starts
  echo "start command (in place of the image's entrypoint; docs/operations.md \"Deploy details\"):"
  echo "  bash -c 'uv pip install -r /repository/requirements.txt --no-cache-dir && exec hf-serve'"
fi
