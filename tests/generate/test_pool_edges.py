"""Edges of synth_core.generate._pool: a corrupt pool manifest is refused (issue 11)."""

from __future__ import annotations

import pytest

from synth_core.errors import InputError


def test_generate_pool_refuses_a_corrupt_manifest(tmp_path):
    from synth_core.generate._pool import _check_or_write_manifest

    (tmp_path / "pool.json").write_text("{broken")
    with pytest.raises(InputError, match="unreadable pool manifest .*pool.json"):
        _check_or_write_manifest(tmp_path, {"n_shards": 1})
