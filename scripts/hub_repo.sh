#!/usr/bin/env bash
# Lay out in DIR the files an Inference Endpoint needs from this repository: exactly what to push
# to the Hub model repository (README "Deploy"). DIR may already hold a diffusers checkpoint
# (model_index.json and its folders) or a clone of the Hub repository; nothing else there changes.
#   bash scripts/hub_repo.sh DIR
set -euo pipefail
dest=${1:?usage: bash scripts/hub_repo.sh DIR}
cd "$(dirname "$0")/.."
# handler.py is the platform's entry point, requirements.txt what its container installs, the rest
# what handler.py imports.
FILES=(handler.py requirements.txt video_endpoint pipelines encoders)
mkdir -p "$dest"
tar --create --exclude=__pycache__ --exclude='*.pyc' "${FILES[@]}" | tar --extract --directory "$dest"
echo "laid out in $dest: ${FILES[*]}"
