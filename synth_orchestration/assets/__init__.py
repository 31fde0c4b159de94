"""The assets of the two graphs: the shared stages (source, generator, pool, report) and each graph's
selection assets (:mod:`.flat`, :mod:`.sequential`)."""
