# Shared by bin/run and bin/test: make (or refresh) the project's virtual environment.
# Sourced, not executed. Installs from the project's own pyproject.toml, nothing by hand.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
VENV=${VENV:-.venv}

ensure_venv() {  # $1: the extras to install, e.g. "dev" or ""
  local spec="." stamp
  [ -n "${1:-}" ] && spec=".[${1}]"
  stamp="$VENV/.installed-$(sha256sum pyproject.toml | cut -c1-16)-${1:-base}"
  if [ ! -x "$VENV/bin/python" ]; then
    echo "Creating the virtual environment in $VENV ..."
    "$PYTHON" -m venv "$VENV"
  fi
  if [ ! -f "$stamp" ]; then
    echo "Installing $spec into $VENV (first run only) ..."
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    if [[ ",${1:-}," == *",finetune,"* || ",${1:-}," == *",semantic,"* ]]; then
      # torch first, pinned: asked for by a range through another package, pip would pull a
      # multi-GB CUDA build. Set TORCH_SPEC (e.g. a CUDA wheel) to choose another build.
      local torch_spec
      read -ra torch_spec <<< "${TORCH_SPEC:-torch==2.13.0}"  # words: a pin and pip options
      "$VENV/bin/python" -m pip install --quiet "${torch_spec[@]}"
    fi
    "$VENV/bin/python" -m pip install --quiet -e "$spec"
    touch "$stamp"
  fi
  export PATH="$PWD/$VENV/bin:$PATH"
}
