"""Implementations of the ``est-fairchem`` subcommands (imported only when one runs)."""
