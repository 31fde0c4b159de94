"""The ``synth`` command line: ``_main`` (the parser and ``evaluate``/``history``/``cleanup``),
``_select`` (``synth select`` on any pool).
"""

from synth_core.cli._main import main
from synth_core.cli._select import judge_and_write, read_inputs

__all__ = [
    "judge_and_write",
    "main",
    "read_inputs",
]
