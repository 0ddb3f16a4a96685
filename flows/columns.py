"""Which column of a model's weights each n-gram is, in little memory.

A dictionary from about 117,000 n-grams to their columns holds each n-gram as a string, each
column as an integer and the table between them: about 100 bytes an n-gram, 11 MiB in all,
resident for the life of the process. Here each n-gram is known by its hash (this process's
string hash, 64 bits) in a sorted array beside its column: 16 bytes an n-gram. A word of a
message that is no feature matches one by chance about once in 10^14 n-grams, and then only
nudges a score. Two features sharing a hash (about once in 10^9 models) are told apart by
keeping a dictionary instead.

The n-grams themselves are kept only when asked: a model just trained keeps them, to be saved
and to be sent from the process that trained it to the one that uses it (hashes differ between
processes); a model read from its file keeps none.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


class Columns:
    __slots__ = ("_columns", "_exact", "_hashes", "grams")

    def __init__(self, grams: Sequence[str], keep: bool = False) -> None:
        """``grams`` in the order of their columns; ``keep``: keep them (see the module)."""
        hashes = np.fromiter(map(hash, grams), dtype=np.int64, count=len(grams))
        order = np.argsort(hashes, kind="stable")
        self._hashes = hashes[order]
        self._columns = order.astype(np.intp)
        shared = len(hashes) > 1 and bool(np.any(self._hashes[1:] == self._hashes[:-1]))
        self._exact = {gram: column for column, gram in enumerate(grams)} if shared else None
        self.grams = list(grams) if keep else None

    def __len__(self) -> int:
        return len(self._hashes)

    def found(self, grams: Sequence[str]) -> np.ndarray:
        """The columns of those of ``grams`` that are features, once for each time one occurs."""
        if self._exact is not None:
            return np.array([self._exact[g] for g in grams if g in self._exact], dtype=np.intp)
        if not grams or not len(self._hashes):
            return np.empty(0, dtype=np.intp)
        wanted = np.fromiter(map(hash, grams), dtype=np.int64, count=len(grams))
        at = np.minimum(np.searchsorted(self._hashes, wanted), len(self._hashes) - 1)
        found: np.ndarray = self._columns[at[self._hashes[at] == wanted]]
        return found

    def __reduce__(self) -> tuple[Any, ...]:
        """To another process as the n-grams, hashed again there."""
        if self.grams is None:
            raise TypeError("a model read from its file keeps no n-grams to send: read the file there")
        return (Columns, (self.grams, True))
