"""Repeat problems: groups of tickets in one period whose summaries say the same thing.

A review asks "what keeps coming back?", and answering it must not need a search engine or
a model: admins have to be able to predict, from the rule below, why two tickets were put
together. So the method is deliberately plain and documented:

- a summary becomes a set of terms: lower-cased Latin words and numbers (two characters or
  more, minus a short list of English filler words), and for Chinese (any CJK run) its
  character bigrams – Chinese is written without spaces, and bigrams match "发票无法下载"
  with "发票下载失败" on 发票 and 下载 without a dictionary. A CJK run of one character
  counts as that character. A few particles (的 了 吗 呢 啊 吧) split runs, so they do
  not glue unrelated bigrams together;
- two tickets are similar when they share a category (no category counts as a category of
  its own) and the Jaccard overlap of their term sets, |A ∩ B| / |A ∪ B|, is at least the
  threshold (default 0.5);
- a repeat problem is a connected group of similar tickets (single linkage), of two tickets
  or more. Single linkage can chain A~B~C although A and C differ; with short summaries and
  a threshold of one half this is rare, and it errs towards showing a problem, which is
  what a review wants.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

DEFAULT_THRESHOLD = 0.5

# Filler words that would make unrelated English summaries look alike.
STOPWORDS = frozenset(
    """a an and are as at be been but by can cannot could did do does doesn don for from has have
    how i if in into is isn it its me my no not of on or our please should so that the their
    them then there this to too was we were what when where which while who why will with won
    would you your after before""".split()
)
# Chinese particles that carry no topic; they end a CJK run instead of forming bigrams.
CJK_PARTICLES = "的了吗呢啊吧"

_CJK = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
# CJK runs first; the word branch excludes CJK so "App推送" splits into "app" and a CJK run.
_TERM = re.compile(rf"[{_CJK}]+|[^\W_{_CJK}]+", re.UNICODE)
_CJK_RUN = re.compile(rf"^[{_CJK}]+$")
_PARTICLES = re.compile(f"[{CJK_PARTICLES}]")


def terms(text: str) -> frozenset[str]:
    """The comparable terms of a summary: Latin words and Chinese character bigrams."""
    out: set[str] = set()
    for match in _TERM.finditer(_PARTICLES.sub(" ", text.casefold())):
        word = match.group()
        if _CJK_RUN.match(word):
            if len(word) == 1:
                out.add(word)
            else:
                out.update(word[i:i + 2] for i in range(len(word) - 1))
        elif len(word) >= 2 and word not in STOPWORDS:
            out.add(word)
    return frozenset(out)


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    """|A ∩ B| / |A ∪ B|; two empty sets are not similar (nothing to compare)."""
    if not a or not b:
        return 0.0
    return len(a & b) / len(a | b)


@dataclass(frozen=True)
class Similar:
    """What clustering needs of a ticket: its id, its category and its summary."""

    key: str
    category: str | None
    summary: str


@dataclass(frozen=True)
class Cluster:
    """One repeat problem: the tickets (in input order) and the terms most of them share (more than half)."""

    category: str | None
    keys: tuple[str, ...]
    summary: str  # the first ticket's summary, as the problem's name
    common_terms: tuple[str, ...]


def clusters(items: Sequence[Similar], threshold: float = DEFAULT_THRESHOLD) -> list[Cluster]:
    """Repeat problems among `items`, largest first (ties: earliest first ticket first)."""
    if not 0 < threshold <= 1:
        raise ValueError("the similarity threshold is a share between 0 (exclusive) and 1")
    term_sets = [terms(item.summary) for item in items]
    parent = list(range(len(items)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(items)):
        for j in range(i + 1, len(items)):
            if _category(items[i]) == _category(items[j]) and jaccard(term_sets[i], term_sets[j]) >= threshold:
                parent[root(j)] = root(i)
    groups: dict[int, list[int]] = {}
    for i in range(len(items)):
        groups.setdefault(root(i), []).append(i)
    found = []
    for members in groups.values():
        if len(members) < 2:
            continue
        counts = Counter(term for i in members for term in term_sets[i])
        # Terms more than half the group uses, most used first: what the problem is about.
        common = tuple(sorted((t for t, n in counts.items() if n * 2 > len(members)), key=lambda t: (-counts[t], t)))
        first = items[members[0]]
        found.append((members[0], Cluster(first.category, tuple(items[i].key for i in members), first.summary, common)))
    found.sort(key=lambda pair: (-len(pair[1].keys), pair[0]))
    return [cluster for _, cluster in found]


def _category(item: Similar) -> str:
    return (item.category or "").casefold()
