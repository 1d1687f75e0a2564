"""Ticket text turned into terms, for Latin-script and Chinese text alike.

Many reporters write in Chinese, which has no spaces between words, so splitting on
whitespace would make "VPN连接频繁断开" one useless term. Chinese runs are segmented with
jieba's dictionary (the `rjieba` binding of jieba-rs: maintained, no dictionary build at
start-up) in search mode, which also yields the shorter words inside a compound
("驱动程序" → 驱动, 程序, 驱动程序), so a ticket saying 驱动 still meets one saying 驱动程序.

Reporters also vary their wording for the same fault (断线, 断开, 掉线 are all "drops"), and
no dictionary links those. So every Chinese character is also a term of its own: a shared
word scores the word and its characters, a shared character alone scores a little. Latin
text is lower-cased (after NFKC, which turns full-width "ＶＰＮ" typed in a Chinese input
method into "vpn") and split into letters-and-digits words.

Stop words are words every ticket has ("the", "please", "问题", "你好"): they carry no
evidence of similarity, and as recall terms they would make the platform's search return
every ticket.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

import rjieba

# CJK Unified Ideographs (basic, extension A, compatibility): the characters Chinese is written in.
_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_RUNS = re.compile(rf"(?P<cjk>[{_CJK}]+)|(?P<word>[^\W_{_CJK}]+)")

ENGLISH_STOP_WORDS = frozenset("""
a about above after again against all am an and any are as at be because been before being below
between both but by can cannot could did do does doing during each few for from further had
has have having he her here hers him his how i if in into is it its itself just me more most my no
nor not now of on once only or other our over own same she should so some such than that
the their them then there these they this those through to too under until very was we were what
when where which while who whom why will with would you your yours
also get gets got still since via per etc
hi hello dear please thanks thank regards kind best team
issue issues problem problems ticket tickets help support question
today yesterday morning afternoon evening always sometimes often suddenly keep keeps every
""".split())

CHINESE_STOP_WORDS = frozenset("""
的 了 是 在 和 与 及 或 也 就 都 而 着 吗 呢 吧 啊 呀 哦 嗯 么 之 其 把 被 给 让 从 向 对 于 为 以 等
我 你 您 他 她 它 我们 你们 他们 她们 它们 这 那 这个 那个 这些 那些 这样 那样 这里 那里 哪 哪里
一 一个 一下 一些 有 没 没有 个 很 还 又 再 才 已 已经 会 能 要 想 请 请问 麻烦 谢谢 感谢 你好 您好
无法 不能 提示 显示 问题 工单 情况 时候 现在 目前 今天 昨天 然后 但是 因为 所以 如果 可以 需要 进行 出现 发现 帮忙 帮助
一直 总是 经常 突然 开始 早上 上午 下午 晚上 怎么 怎么办 怎样 什么 为什么 如何
不 上 下 中 里 后 前 时 到 说 去 来 过 得 地
""".split())

STOP_WORDS = ENGLISH_STOP_WORDS | CHINESE_STOP_WORDS


def _normalise(text: str) -> str:
    return unicodedata.normalize("NFKC", text or "").casefold()


def words(text: str) -> list[str]:
    """The words of `text` in order, stop words left out: Latin words and segmented Chinese words.

    These are what a person would type into a search box, so recall terms come from here.
    """
    found: list[str] = []
    for match in _RUNS.finditer(_normalise(text)):
        if match.group("cjk"):
            found.extend(w for w in rjieba.cut_for_search(match.group("cjk")) if w not in STOP_WORDS)
        else:
            word = match.group("word")
            # One letter or digit says nothing ("a", the "2" of "step 2").
            if len(word) > 1 and word not in STOP_WORDS:
                found.append(word)
    return found


def stem(word: str) -> str:
    """A light English stem: "disconnects", "disconnected", "disconnecting" → "disconnect".

    Only the inflections that make the same word look different in a ticket (plural,
    -ed, -ing); a full stemmer such as Porter's also merges derivations that mean
    different things ("general", "generate" → "gener"), and the platforms' own search
    already stems for recall. Chinese has no inflection and is returned as it is.
    """
    if is_cjk(word) or not word.isalpha():
        return word
    if word.endswith("sses"):
        return word[:-2]
    for suffix, keep in (("ies", "y"), ("ing", ""), ("ed", ""), ("es", ""), ("s", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            if suffix == "s" and word.endswith(("ss", "us", "is")):
                return word
            if suffix == "es" and not word.endswith(("ches", "shes", "xes", "zes")):
                continue
            return word[: -len(suffix)] + keep
    return word


def tokens(text: str) -> list[str]:
    """Every term of `text` for ranking: its words, stemmed, plus each Chinese character
    (see the module docstring)."""
    found = [stem(word) for word in words(text)]
    for match in _RUNS.finditer(_normalise(text)):
        if match.group("cjk"):
            found.extend(ch for ch in match.group("cjk") if ch not in STOP_WORDS)
    return found


_CJK_TERM = re.compile(rf"[{_CJK}]+")


def is_cjk(term: str) -> bool:
    return bool(_CJK_TERM.fullmatch(term))


def key_terms(summary: str, description: str = "", *, limit: int = 3) -> list[str]:
    """The few terms most likely to find tickets about the same problem, best first.

    Both Jira (`text ~ "a b"`) and Zendesk search require ALL words of one query, so the
    caller searches once per term; each term therefore has to be specific on its own.
    The summary states the problem most densely, so its words come first; then words the
    reporter repeats; then longer words (a longer word is rarer: "certificate" over "vpn
    app"). Single Chinese characters and short Latin words are too common to search for.
    """
    if limit <= 0:
        return []
    summary_words = words(summary)
    in_summary = set(summary_words)
    everything = summary_words + words(description)
    counts = Counter(everything)
    first_seen: dict[str, int] = {}
    for position, word in enumerate(everything):
        first_seen.setdefault(word, position)

    def searchable(word: str) -> bool:
        return len(word) >= 2 if is_cjk(word) else len(word) >= 3

    candidates = [w for w in counts if searchable(w)]
    # A compound and its parts (驱动程序, 驱动, 程序) would spend several searches on one
    # idea; the compound is the most specific of them, and it finds the texts its parts
    # would find when they are about the same thing.
    candidates = [w for w in candidates if not any(w != other and w in other for other in candidates)]
    candidates.sort(key=lambda w: (w not in in_summary, -counts[w], -len(w), first_seen[w]))
    return candidates[:limit]
