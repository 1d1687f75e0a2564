"""Okapi BM25 ranking over a handful of candidate tickets.

Written out here rather than taken from a package because it is twenty lines and the
connector needs one thing the packages do not give: a score on a fixed scale.
Raw BM25 has none - it grows with the number of query terms and depends on how many
candidates the platform's search happened to return - so a "minimum score" on it would
mean something different for every ticket. `similarity` therefore divides a document's
score by the score the query gets against itself: the share (0..1) of the query's
weighted terms that the document holds.

The IDF is Lucene's, log(1 + (N - n + 0.5) / (n + 0.5)), which never goes negative (the
classic Robertson form does for terms in more than half the documents). The documents
ranked here are not a random sample, though: the platform's search returned them *because*
they contain the ticket's key words, so within them those words look common and would
weigh almost nothing - precisely the words that matched. `background` counts that many
further documents holding none of the terms (the tickets the search did not return), which
keeps the matched words weighty while a word found in most candidates still weighs less
than a rare one.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

K1 = 1.2
B = 0.75


class BM25:
    """A BM25 index of `documents` (each a list of terms)."""

    def __init__(self, documents: Sequence[Sequence[str]], *, k1: float = K1, b: float = B,
                 background: int = 0) -> None:
        if k1 < 0 or not 0 <= b <= 1 or background < 0:
            raise ValueError("BM25 needs k1 >= 0, 0 <= b <= 1 and background >= 0")
        self.k1, self.b = k1, b
        self._counts = [Counter(doc) for doc in documents]
        self._lengths = [len(doc) for doc in documents]
        self._average_length = (sum(self._lengths) / len(self._lengths)) if self._lengths else 0.0
        frequency: Counter[str] = Counter()
        for counts in self._counts:
            frequency.update(counts.keys())
        self._total = len(self._counts) + background
        self._idf = {term: math.log(1 + (self._total - n + 0.5) / (n + 0.5)) for term, n in frequency.items()}

    def __len__(self) -> int:
        return len(self._counts)

    def idf(self, term: str) -> float:
        # A term in no document still has the highest weight a term can have here.
        return self._idf.get(term, math.log(1 + (self._total + 0.5) / 0.5))

    def score(self, query: Sequence[str], index: int) -> float:
        """BM25 of document `index` for `query`; a term repeated in the query counts each time."""
        counts = self._counts[index]
        norm = self.k1 * (1 - self.b + self.b * self._lengths[index] / self._average_length) if self._average_length else self.k1
        total = 0.0
        for term in query:
            tf = counts.get(term, 0)
            if tf:
                total += self.idf(term) * tf * (self.k1 + 1) / (tf + norm)
        return total

    def similarity(self, query: Sequence[str], index: int, *, self_index: int) -> float:
        """Document `index`'s score as a share of the score of document `self_index`, the query's own text.

        Capped at 1: a document that repeats the query's words more often than the query
        does is not "more than identical".
        """
        best = self.score(query, self_index)
        if best <= 0:
            return 0.0
        return min(1.0, self.score(query, index) / best)
