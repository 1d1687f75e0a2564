"""Similar past cases and the knowledge-base gate, without a platform: tokenising (Chinese
included), BM25 ranking and its thresholds, the similar-cases rule, the closure gate, when
a lookup is wanted, and the config errors an admin sees."""

from __future__ import annotations

import textwrap
from datetime import datetime, timezone

import pytest

from connector.config import ConfigError, load_config
from connector.knowledge.bm25 import BM25
from connector.knowledge.enrich import lookup_settings, wants_lookup
from connector.knowledge.similar import rank
from connector.knowledge.text import key_terms, stem, tokens, words
from connector.model import AddComment, AddLabel, SimilarCase, Status, Ticket, Transition
from connector.rules.engine import evaluate
from connector.rules.projection import project
from connector.rules.similar_cases import SimilarCasesRule
from connector.settings import DEFAULT_CONFIG
from tests.factories import INTAKE, at, ticket

CONFIG = load_config(DEFAULT_CONFIG)
SIMILAR_RULE = next(r for r in CONFIG.rules if r.id == "similar-cases")  # by id: rules may be added before it
ZH_CONFIG = load_config(DEFAULT_CONFIG.parent / "standard-support.zh-CN.yaml")
NOW = at("2026-11-20 11:01")


def only(*rule_ids, config=CONFIG):
    return config.model_copy(update={"rules": [r for r in config.rules if r.id in rule_ids]})


def settle(t, now, config):
    """Evaluate, apply the plan, evaluate again: the second plan must be empty."""
    plan = evaluate(t, now, config)
    after = project(t, plan.actions, now)
    again = evaluate(after, now, config)
    assert again.actions == [], f"not idempotent: {again.actions}"
    return plan, after


def case(key="SUP-7", score=0.6, **extra):
    return SimilarCase(key=key, url=f"https://jira.example.com/browse/{key}", summary=extra.get("summary", "VPN 连接频繁断开"),
                       root_cause=extra.get("root_cause", "网关证书过期"), solution=extra.get("solution", "更新网关证书"),
                       score=score)


def past(n, summary, description="", root_cause="", solution="", updated_day=1):
    return Ticket(platform="jira", id=str(n), key=f"SUP-{n}", summary=summary, description=description,
                  status=Status.RESOLVED, created=datetime(2026, 10, 1, tzinfo=timezone.utc),
                  updated=datetime(2026, 10, updated_day, tzinfo=timezone.utc),
                  fields={"root_cause": root_cause, "solution": solution})


class Settings:
    def __init__(self, min_score=0.0, max_results=5):
        self.min_score, self.max_results, self.recall_terms, self.recall_limit = min_score, max_results, 3, 50


# --- text ------------------------------------------------------------------------------

def test_chinese_is_segmented_into_words():
    assert words("VPN 连接频繁断开") == ["vpn", "连接", "频繁", "断开"]
    # Without spaces too: the Latin word and the Chinese word come apart.
    assert words("VPN断线") == ["vpn", "断线"]


def test_search_mode_also_yields_the_words_inside_a_compound():
    assert {"驱动", "程序", "驱动程序", "打印机"} <= set(words("打印机提示驱动程序错误"))


def test_ranking_terms_add_each_chinese_character_so_variants_meet():
    # 断线 and 断开 ("disconnected") share no word, only the character 断.
    assert "断" in set(tokens("VPN断线")) & set(tokens("VPN 连接频繁断开"))


def test_stop_words_and_full_width_letters():
    assert words("Hello, please help: the ＶＰＮ is down") == ["vpn", "down"]
    assert words("你好，请问这个问题怎么办：VPN断线") == ["vpn", "断线"]


@pytest.mark.parametrize("word, expected", [
    ("disconnects", "disconnect"), ("disconnected", "disconnect"), ("disconnecting", "disconnect"),
    ("queries", "query"), ("fixes", "fix"), ("classes", "class"), ("status", "status"), ("vpn", "vpn"),
    ("0x80070005", "0x80070005"), ("断线", "断线"),
])
def test_light_english_stemming(word, expected):
    assert stem(word) == expected


def test_key_terms_prefer_the_summary_then_repetition_and_skip_what_is_too_common():
    terms = key_terms("VPN断线", "今天早上开始VPN一直断线，无法访问内网", limit=3)
    assert terms[:2] == ["vpn", "断线"]
    assert "无法" not in terms and "内" not in terms and len(terms) == 3


def test_key_terms_keep_the_compound_not_its_parts():
    terms = key_terms("打印机提示驱动程序错误", limit=5)
    assert "驱动程序" in terms and "驱动" not in terms and "程序" not in terms


def test_key_terms_of_an_empty_or_all_stop_word_ticket():
    assert key_terms("", "") == []
    assert key_terms("Hello, please help", "thanks") == []


# --- BM25 ------------------------------------------------------------------------------

def test_bm25_rare_shared_term_outranks_common_one():
    docs = [["vpn", "drop"], ["vpn", "account"], ["vpn", "certificate", "expired"], ["printer", "jam"]]
    index = BM25(docs)
    query = ["vpn", "certificate"]
    scores = [index.score(query, i) for i in range(len(docs))]
    assert scores.index(max(scores)) == 2
    assert scores[3] == 0.0


def test_bm25_shorter_document_wins_at_equal_term_frequency():
    index = BM25([["vpn", "drop"], ["vpn", "drop", "a1", "a2", "a3", "a4", "a5", "a6"]])
    assert index.score(["drop"], 0) > index.score(["drop"], 1) > 0


def test_bm25_idf_never_negative_even_for_a_term_in_every_document():
    index = BM25([["vpn"], ["vpn"], ["vpn", "x"]])
    assert index.idf("vpn") > 0
    assert index.score(["vpn"], 0) > 0


def test_similarity_is_one_for_the_query_itself_and_zero_without_overlap():
    index = BM25([["vpn", "drop"], ["vpn", "drop"], ["printer"]])
    assert index.similarity(["vpn", "drop"], 1, self_index=0) == pytest.approx(1.0)
    assert index.similarity(["vpn", "drop"], 2, self_index=0) == 0.0


def test_background_documents_keep_the_matched_words_weighty():
    """Recalled candidates all hold the search word; without a background it would weigh ~nothing."""
    docs = [["vpn", "drop"], ["vpn", "cert"], ["vpn", "account"]]
    assert BM25(docs).idf("vpn") < 0.2 * BM25(docs).idf("drop")
    assert BM25(docs, background=100).idf("vpn") > 0.7 * BM25(docs, background=100).idf("drop")


def test_score_of_a_pair_hardly_depends_on_how_many_candidates_came_back():
    new = ticket(summary="VPN断线", description="VPN一直断线，连不上内网", fields={})
    alone = rank(new, [POOL[1]], Settings())[0].score
    crowded = next(c.score for c in rank(new, POOL, Settings()) if c.key == "SUP-12")
    assert abs(alone - crowded) < 0.1


def test_bm25_rejects_nonsense_parameters():
    with pytest.raises(ValueError):
        BM25([["a"]], b=1.5)


# --- ranking: thresholds ---------------------------------------------------------------

POOL = [
    past(11, "VPN 账号申请", "新员工需要开通 VPN 账号", solution="已开通账号"),
    past(12, "VPN 连接频繁断开", "在家办公时 VPN 每隔几分钟就断开连接", "VPN 网关证书过期", "更新网关证书"),
    past(13, "打印机无法打印", "提示驱动程序错误", "驱动版本不兼容", "重新安装驱动"),
    past(14, "Outlook cannot sync mail", "Outlook shows disconnected", "Exchange token expired", "Re-login"),
]


def test_chinese_variant_wording_finds_the_right_case_first():
    new = ticket(summary="VPN断线", description="VPN一直断线，连不上内网", fields={})
    found = rank(new, POOL, Settings())
    assert [c.key for c in found][:2] == ["SUP-12", "SUP-11"]
    assert "SUP-13" not in {c.key for c in found}
    assert found[0].root_cause == "VPN 网关证书过期" and found[0].solution == "更新网关证书"
    assert found[0].url is None  # the pool's tickets have none; the platform's do


def test_min_score_and_max_results_cut_the_list():
    new = ticket(summary="VPN断线", description="VPN一直断线，连不上内网", fields={})
    everything = rank(new, POOL, Settings())
    assert len(everything) >= 2 and everything[0].score > everything[1].score
    cut = (everything[0].score + everything[1].score) / 2
    assert [c.key for c in rank(new, POOL, Settings(min_score=cut))] == ["SUP-12"]
    assert rank(new, POOL, Settings(min_score=everything[0].score + 0.01)) == ()
    assert len(rank(new, POOL, Settings(max_results=1))) == 1


def test_the_ticket_itself_is_never_its_own_similar_case():
    same = ticket(summary="VPN 连接频繁断开", fields={}).model_copy(update={"id": "12"})
    pool = [p for p in POOL if p.id == "12"]
    assert rank(same, pool, Settings()) == ()


def test_equal_scores_prefer_the_most_recently_updated_case():
    older = past(21, "Outlook cannot sync", updated_day=1)
    newer = past(22, "Outlook cannot sync", updated_day=9)
    found = rank(ticket(summary="Outlook cannot sync", fields={}), [older, newer], Settings())
    assert [c.key for c in found] == ["SUP-22", "SUP-21"]


# --- the similar-cases rule ------------------------------------------------------------

def new_ticket(similar=None, **extra):
    return ticket(fields={}, summary="VPN断线", **extra).model_copy(update={"similar_cases": similar})


def test_note_lists_the_cases_with_root_cause_solution_and_link_once():
    t = new_ticket((case("SUP-7", 0.62), case("SUP-3", 0.3, summary="VPN account", root_cause="", solution="")))
    plan, after = settle(t, NOW, only("similar-cases"))
    [note] = plan.actions
    assert isinstance(note, AddComment) and not note.public and note.marker == "spc-similar-cases-suggested"
    assert note.body.index("SUP-7") < note.body.index("SUP-3")
    assert "Root cause: 网关证书过期" in note.body and "Solution: 更新网关证书" in note.body
    assert "https://jira.example.com/browse/SUP-7" in note.body and "62% match" in note.body
    assert "Root cause: not recorded" in note.body
    assert not wants_lookup(after, CONFIG)


def test_note_caps_the_list_and_drops_cases_below_the_rules_min_score():
    rule = SIMILAR_RULE.model_copy(update={"max_results": 2})
    config = CONFIG.model_copy(update={"rules": [rule]})
    t = new_ticket((case("SUP-1", 0.9), case("SUP-2", 0.5), case("SUP-3", 0.4), case("SUP-4", 0.1)))
    [note] = evaluate(t, NOW, config).actions
    assert "SUP-1" in note.body and "SUP-2" in note.body and "SUP-3" not in note.body and "SUP-4" not in note.body


def test_nothing_found_is_recorded_so_the_search_is_not_repeated():
    plan, after = settle(new_ticket(()), NOW, only("similar-cases"))
    assert plan.actions == [AddLabel(rule="similar-cases", reason=plan.actions[0].reason,
                                     label="spc-similar-cases-none")]
    assert not wants_lookup(after, CONFIG)


def test_no_lookup_no_note():
    assert evaluate(new_ticket(None), NOW, only("similar-cases")).actions == []


def test_not_for_tickets_already_in_work_or_in_switched_off_categories():
    assert evaluate(new_ticket((case(),), status=Status.IN_PROGRESS), NOW, only("similar-cases")).actions == []
    rule = SIMILAR_RULE.model_copy(update={"categories_off": ["Network"]})
    config = CONFIG.model_copy(update={"rules": [rule]})
    t = new_ticket((case(),))
    assert evaluate(t, NOW, config).actions == []
    assert not wants_lookup(t.model_copy(update={"similar_cases": None}), config)


def test_when_categories_limit_the_note():
    rule = SIMILAR_RULE.model_copy(update={"when": SIMILAR_RULE.when.model_copy(update={"categories": ["login"]})})
    config = CONFIG.model_copy(update={"rules": [rule]})
    assert evaluate(new_ticket((case(),)), NOW, config).actions == []
    assert len(evaluate(new_ticket((case(),), category="Login"), NOW, config).actions) == 1


def test_note_after_intake_moved_the_ticket_in_the_same_plan():
    """Intake runs first and moves an incomplete ticket to waiting; the note still comes."""
    t = new_ticket((case(),))
    plan, after = settle(t, NOW, only("intake", "similar-cases"))
    markers = [a.marker for a in plan.actions if isinstance(a, AddComment)]
    assert markers == ["spc-intake-requested", "spc-similar-cases-suggested"]
    assert after.status == Status.WAITING_FOR_INFORMATION


def test_chinese_note_from_the_zh_cn_config():
    [note] = evaluate(new_ticket((case(),)), NOW, only("similar-cases", config=ZH_CONFIG)).actions
    assert "相似历史案例" in note.body and "根本原因：网关证书过期" in note.body and "相似度 60%" in note.body


# --- the closure rule's knowledge-base gate --------------------------------------------

def resolved(fields, similar=None, attempts=1, labels=()):
    history = [("2026-11-20 09:10", Status.NEW, Status.IN_PROGRESS)]
    for n in range(attempts):
        history.append((f"2026-11-20 1{n + 1}:00", Status.IN_PROGRESS, Status.RESOLVED))
        if n + 1 < attempts:
            history.append((f"2026-11-20 1{n + 1}:05", Status.RESOLVED, Status.IN_PROGRESS))
    t = ticket(status=Status.RESOLVED, fields=fields, history=history, group="L1", labels=labels)
    return t.model_copy(update={"similar_cases": similar})


RECORDED = {**INTAKE, "root_cause": "cert expired", "solution": "renewed", "verification_result": "resolved"}


def test_first_of_its_kind_without_kb_link_is_sent_back():
    plan, after = settle(resolved(RECORDED, similar=()), NOW, only("closure"))
    comment = next(a for a in plan.actions if isinstance(a, AddComment))
    assert comment.marker == "spc-closure-returned-1" and "Knowledge-base link" in comment.body
    assert "Recurrence note" not in comment.body
    assert Transition(rule="closure", reason=comment.reason, to=Status.IN_PROGRESS) in plan.actions
    assert after.status == Status.IN_PROGRESS


def test_known_issue_without_recurrence_note_is_sent_back_naming_the_earlier_cases():
    plan, _ = settle(resolved(RECORDED, similar=(case("SUP-7"),)), NOW, only("closure"))
    comment = next(a for a in plan.actions if isinstance(a, AddComment))
    assert "recurrence note" in comment.body.casefold() and "Knowledge-base link" not in comment.body
    assert "SUP-7" in comment.body


def test_gate_missing_items_join_the_other_missing_fields_in_one_comment():
    fields = {k: v for k, v in RECORDED.items() if k != "root_cause"}
    plan = evaluate(resolved(fields, similar=()), NOW, only("closure"))
    [comment] = [a for a in plan.actions if isinstance(a, AddComment)]
    assert "Root cause" in comment.body and "Knowledge-base link" in comment.body


def test_gate_passed_is_recorded_once_per_attempt():
    t = resolved({**RECORDED, "kb_link": "https://kb.example.com/42"}, similar=())
    plan, after = settle(t, NOW, only("closure"))
    assert plan.actions == [AddLabel(rule="closure", reason=plan.actions[0].reason,
                                     label="spc-closure-knowledge-checked-1")]
    assert not wants_lookup(after.model_copy(update={"similar_cases": None}), CONFIG)


def test_no_lookup_means_no_gate():
    """similar_cases None: nobody looked (or the search failed); never send back on a guess."""
    assert evaluate(resolved(RECORDED, similar=None), NOW, only("closure")).actions == []


def test_gate_off_ignores_similar_cases():
    rule = next(r for r in CONFIG.rules if r.id == "closure").model_copy(
        update={"require_kb_link_when_first_of_kind": False})
    config = CONFIG.model_copy(update={"rules": [rule]})
    assert evaluate(resolved(RECORDED, similar=()), NOW, config).actions == []
    assert not wants_lookup(resolved(RECORDED), config)


# --- when a lookup is wanted -----------------------------------------------------------

def test_lookup_wanted_for_a_new_ticket_until_its_marker_is_there():
    assert isinstance(lookup_settings(new_ticket(), CONFIG), SimilarCasesRule)
    assert not wants_lookup(new_ticket(labels={"spc-similar-cases-suggested"}), CONFIG)
    assert not wants_lookup(new_ticket(labels={"spc-similar-cases-none"}), CONFIG)
    assert not wants_lookup(new_ticket(status=Status.IN_PROGRESS), CONFIG)


def test_lookup_wanted_when_resolving_without_the_knowledge_fields():
    assert wants_lookup(resolved(RECORDED), CONFIG)
    assert wants_lookup(resolved({**RECORDED, "kb_link": "https://kb/1"}), CONFIG)  # note may be needed
    assert not wants_lookup(resolved({**RECORDED, "kb_link": "https://kb/1", "recurrence_note": "new site"}), CONFIG)
    assert not wants_lookup(resolved(RECORDED, labels={"spc-closure-returned-1"}), CONFIG)
    assert not wants_lookup(resolved({**RECORDED, "verification_result": "not resolved"}), CONFIG)
    # A new resolve attempt is judged again.
    assert wants_lookup(resolved(RECORDED, attempts=2, labels={"spc-closure-knowledge-checked-1"}), CONFIG)


def test_gate_uses_the_similar_cases_settings_even_when_notes_are_off():
    rules = [r.model_copy(update={"enabled": False}) if r.id == "similar-cases" else r for r in CONFIG.rules]
    config = CONFIG.model_copy(update={"rules": rules})
    assert not wants_lookup(new_ticket(), config)
    settings = lookup_settings(resolved(RECORDED), config)
    assert settings is not None and settings.id == "similar-cases"


# --- config validation -----------------------------------------------------------------

CALENDAR = """
calendars:
  standard:
    timezone: Asia/Shanghai
    working_hours: {mon: ["09:00-18:00"]}
"""


def problems(tmp_path, text):
    path = tmp_path / "rules.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return path, [str(p) for p in info.value.problems]


def test_negative_min_score_is_reported_with_file_and_line(tmp_path):
    path, [message] = problems(tmp_path, CALENDAR + """
rules:
  - id: similar
    type: similar-cases
    min_score: -0.5
    comment: {template: "{% for case in cases %}{{ case.key }}{% endfor %}"}
""")
    assert message.startswith(f"{path}:10: rules[0].min_score (rule 'similar'):")
    assert "greater than or equal to 0" in message


def test_zero_max_results_and_a_bad_template_variable_are_reported(tmp_path):
    path, found = problems(tmp_path, CALENDAR + """
rules:
  - id: similar
    type: similar-cases
    max_results: 0
    comment: {template: "{{ case.key }}"}
""")
    assert any(m.startswith(f"{path}:10: rules[0].max_results") for m in found)


def test_template_with_an_unknown_variable_is_reported(tmp_path):
    path, [message] = problems(tmp_path, CALENDAR + """
rules:
  - id: similar
    type: similar-cases
    comment: {template: "{% for c in cases %}{{ c.rootcause }}{% endfor %}"}
""")
    assert message.startswith(f"{path}:10: rules[0].comment.template (rule 'similar'): template does not render")


def test_gate_without_a_similar_cases_rule_is_reported(tmp_path):
    path, [message] = problems(tmp_path, CALENDAR + """
rules:
  - id: closure
    type: closure
    fields: [root_cause]
    require_kb_link_when_first_of_kind: true
    comment: {template: "missing {{ missing | join(', ') }}"}
""")
    assert message.startswith(f"{path}:11: rules[0].require_kb_link_when_first_of_kind (rule 'closure'): "
                              "needs a rule of type 'similar-cases'")


def test_gate_field_that_no_platform_maps_is_reported(tmp_path):
    path, [message] = problems(tmp_path, CALENDAR + """
rules:
  - id: similar
    type: similar-cases
    comment: {template: "x"}
  - id: closure
    type: closure
    fields: [root_cause]
    require_kb_link_when_first_of_kind: true
    recurrence_note_field: why_again
    comment: {template: "x"}
""")
    assert message.startswith(f"{path}:15: rules[1].recurrence_note_field (rule 'closure'): field 'why_again'")
