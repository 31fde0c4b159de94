#!/usr/bin/env bash
# Create or refresh the project virtual environment (.venv) and the project state folder (.synth/).
#
# Idempotent: when .venv/.installed is newer than pyproject.toml and constraints.txt, nothing is
# installed. Otherwise:
#   1. create .venv with $PYTHON (default python3, must be >= 3.11) when it is missing;
#   2. upgrade pip;
#   3. install torch==2.13.0 first (constraints.txt pins the local CPU build, never a CUDA one);
#   4. install the project in editable mode with its dev extra, under constraints.txt;
#   5. check that the tabular engine imports; if the torchvision/torchaudio that mostlyai[local]
#      pulls from PyPI break it, remove them (the engine does not need them) and check again;
#   6. check that the `synth` console script exists;
#   7. touch .venv/.installed (only when every step succeeded).
# Full pip output goes to .venv/setup.log; on failure its tail is printed.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
VENV=$ROOT/.venv
VPY=$VENV/bin/python
STAMP=$VENV/.installed
LOG=$VENV/setup.log
PYTHON=${PYTHON:-python3}
STATE=$ROOT/.synth
DAGSTER_HOME_DIR=$STATE/dagster_home

export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_PROGRESS_BAR=off

say() { echo "setup: $*"; }
die() { echo "setup: ERROR: $*" >&2; exit 1; }

# --- project state folder (cheap, always ensured) ---------------------------------------------
mkdir -p "$DAGSTER_HOME_DIR"
if [ ! -f "$DAGSTER_HOME_DIR/dagster.yaml" ]; then
    cat >"$DAGSTER_HOME_DIR/dagster.yaml" <<'YAML'
# Dagster instance of this project (local storage under this folder; nothing here uses the network).
telemetry:
  enabled: false
nux:
  enabled: false
YAML
fi
if ! grep -q "^python_logs:" "$DAGSTER_HOME_DIR/dagster.yaml"; then
    # progress lines of the library (training, pool shards, selection loops) in the run logs
    cat >>"$DAGSTER_HOME_DIR/dagster.yaml" <<'YAML'
python_logs:
  managed_python_loggers:
    - synth_core
  python_log_level: INFO
YAML
fi

up_to_date() {
    [ -x "$VPY" ] && [ -f "$STAMP" ] && [ "$STAMP" -nt pyproject.toml ] && [ "$STAMP" -nt constraints.txt ]
}

if up_to_date; then
    say "venv up to date"
    exit 0
fi

# Two make targets started at once must not install into the same venv together.
if command -v flock >/dev/null 2>&1; then
    exec 9>"$STATE/setup.lock"
    flock 9
    if up_to_date; then
        say "venv up to date"
        exit 0
    fi
fi

START=$SECONDS
rm -f "$STAMP"

# pip/python steps log to $LOG; on failure show the tail.
run_logged() {
    local what=$1
    shift
    local t0=$SECONDS
    say "$what ..."
    if ! "$@" >>"$LOG" 2>&1; then
        echo "----- last lines of $LOG -----" >&2
        tail -n 40 "$LOG" >&2
        echo "------------------------------" >&2
        die "$what failed (full log: $LOG)"
    fi
    say "$what done ($((SECONDS - t0)) s)"
}

if [ ! -x "$VPY" ]; then
    command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found (set PYTHON=/path/to/python3.11+)"
    "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' ||
        die "$PYTHON is $("$PYTHON" -c 'import sys; print(sys.version.split()[0])'); Python >= 3.11 is required (set PYTHON=...)"
    say "creating .venv with $("$PYTHON" -c 'import sys; print(sys.executable, sys.version.split()[0])')"
    "$PYTHON" -m venv "$VENV" || die "could not create $VENV"
fi
: >"$LOG"

PIP=("$VPY" -m pip)

run_logged "upgrading pip" "${PIP[@]}" install --upgrade pip
run_logged "installing torch 2.13.0 (CPU build)" "${PIP[@]}" install -c constraints.txt torch==2.13.0
torch_version=$("$VPY" -c 'from importlib.metadata import version; print(version("torch"))')
case $torch_version in
    *+cpu) ;;
    *) die "installed torch is $torch_version, not the 2.13.0 CPU build; run 'make clean' and check pip's find-links" ;;
esac
run_logged "installing synth-twin (editable) with dev extra" "${PIP[@]}" install -c constraints.txt -e '.[dev]'

# --- the tabular engine must import -------------------------------------------------------------
engine_imports() { "$VPY" -c 'import mostlyai.engine' >>"$LOG" 2>&1; }

dist_version() {
    "$VPY" - "$1" <<'PY'
import sys
from importlib.metadata import PackageNotFoundError, version
try:
    print(version(sys.argv[1]))
except PackageNotFoundError:
    pass
PY
}

if ! engine_imports; then
    tv=$(dist_version torchvision)
    ta=$(dist_version torchaudio)
    if [ -z "$tv" ] && [ -z "$ta" ]; then
        tail -n 20 "$LOG" >&2
        die "'import mostlyai.engine' fails (full log: $LOG)"
    fi
    say "torchvision ${tv:-(absent)} / torchaudio ${ta:-(absent)} from PyPI do not load beside torch 2.13.0 CPU;" \
        "removing torchvision/torchaudio (the tabular engine does not need them)"
    run_logged "removing torchvision/torchaudio" "${PIP[@]}" uninstall -y torchvision torchaudio
    if ! engine_imports; then
        tail -n 20 "$LOG" >&2
        die "'import mostlyai.engine' still fails after removing torchvision/torchaudio (full log: $LOG)"
    fi
fi
say "import mostlyai.engine: ok"

[ -x "$VENV/bin/synth" ] || die "$VENV/bin/synth is missing (console script of synth-twin not installed)"

touch "$STAMP"
say "venv ready in $((SECONDS - START)) s"
