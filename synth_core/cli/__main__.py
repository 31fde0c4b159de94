"""``python -m synth_core.cli``: the ``synth`` command."""

from synth_core.cli import main

raise SystemExit(main())
