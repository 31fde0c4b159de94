#!/usr/bin/env bash
# Build the DP baselines' private virtual environment (idempotent; a no-op once it is set up).
#
# Why a separate venv: smartnoise-synth 1.0.8 (MST and AIM) pins mbi < 2 (private-pgm's JAX-based
# 1.1.0, whose API it calls) and opacus 0.14.x, both of which clash with the main .venv. The venv
# lives at /work/main/.synth/baselines-venv (git-ignored), is built with python3.11, and gets the
# exact versions of requirements.txt installed with --no-deps, so nothing unpinned sneaks in.
# opacus and torch are not installed at all: only snsynth.pytorch needs them, never MST or AIM
# (`pip check` will therefore name opacus as missing; that is expected).
#
# A stamp file holding the hash of requirements.txt marks a finished install: a changed
# requirements.txt, or an install that died half-way, makes the next run rebuild from scratch.
# Override the location with SYNTH_BASELINES_VENV and the interpreter with PYTHON.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="${SYNTH_BASELINES_VENV:-$repo/.synth/baselines-venv}"
python="${PYTHON:-python3.11}"
req="$here/requirements.txt"
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$req" | cut -d' ' -f1)"

if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -x "$venv/bin/python" ]]; then
    exit 0
fi

if ! command -v "$python" >/dev/null 2>&1; then
    echo "setup.sh: $python not found (the baselines need Python 3.11)" >&2
    exit 1
fi

echo "setup.sh: building $venv" >&2
rm -rf "$venv"
mkdir -p "$(dirname "$venv")"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -r "$req"
# The two synthesizers must import; fail here rather than in the first benchmark run.
"$venv/bin/python" -c "import snsynth.mst, snsynth.aim, mbi, opendp"
echo "$want" > "$stamp"
echo "setup.sh: done" >&2
