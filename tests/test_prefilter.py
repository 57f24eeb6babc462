"""The literal prefilter may only ever leave out patterns that cannot match: checked by brute force."""

import functools

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core.prefilter import LiteralPrefilter, required_literals
from bot.knowledge import load_knowledge


def test_what_a_pattern_needs():
    assert required_literals("(缴纳|支付)[^。]{0,50}(后方可|才能)放款") == [
        frozenset({"缴纳", "支付"}),
        frozenset({"后方可", "才能"}),
        frozenset({"放款"}),
    ]
    assert required_literals("上门(催收)?走访") == [frozenset({"上门"}), frozenset({"走访"})]
    assert required_literals("a+b*c{2,3}d{0,2}") == [frozenset({"a"}), frozenset({"c"})]
    assert required_literals(r"\(2024\)\p{Han}{2}号") == [frozenset({"(2024)"}), frozenset({"号"})]
    assert required_literals("x{,3}") == [frozenset({"x{,3}"})]  # RE2 reads "{,3}" as literal text
    assert required_literals("[]a]b|[^]]c") == [frozenset({"b", "c"})]
    assert required_literals("逾期|.*") == []  # one branch needs nothing: the pattern is always run
    assert required_literals("(?P<n>法院)") == [frozenset({"法院"})]


def test_syntax_it_does_not_model_means_always_run():
    for pattern in ("(?i)abc", r"\Qa.b\E", r"a\nb", "(unclosed", "[unclosed", "a)b", "*a"):
        assert required_literals(pattern) is None, pattern
    prefilter = LiteralPrefilter(["(?i)abc", "法院"])
    assert prefilter.candidates("随便什么") == [0]
    assert prefilter.candidates("法院") == [0, 1]


def test_every_knowledge_pattern_is_read(kb):
    unread = [p for c in kb.signals for p in c.signal.patterns if not required_literals(p)]
    assert unread == []  # a pattern read as needing nothing would run on every message


def _pieces(kb) -> list[str]:
    pieces = {
        lit for c in kb.signals for p in c.signal.patterns for cl in required_literals(p) or [] for lit in cl
    }
    return sorted(pieces) + list("，。！？ 的了你我他0123456789abc")


@functools.cache
def _brute_force() -> tuple[list, LiteralPrefilter, list[str]]:
    kb = load_knowledge()  # not the fixture: hypothesis would print all of it with a failing example
    patterns = [p for c in kb.signals for p in c.signal.patterns]
    return (
        [c.regexes[i] for c in kb.signals for i in range(len(c.signal.patterns))],
        LiteralPrefilter(patterns),
        _pieces(kb),
    )


@given(data=st.data())
@settings(max_examples=400, deadline=None)
def test_no_pattern_that_matches_is_ever_left_out(data):
    # Texts made of the very literals the patterns need (and some filler), so that many patterns match.
    regexes, prefilter, pieces = _brute_force()
    raw = "".join(data.draw(st.lists(st.sampled_from(pieces), max_size=12))).encode()
    matching = {i for i, regex in enumerate(regexes) if regex.search(raw)}
    assert matching <= set(prefilter.candidates(raw.decode())), raw.decode()


def test_every_crisis_pattern_is_read(kb):
    from bot.knowledge.load import expand_safety_pattern, without_lookarounds

    patterns = [
        without_lookarounds(expand_safety_pattern(p))
        for g in kb.safety
        if g.kind == "crisis"
        for p in g.patterns
    ]
    assert len(patterns) > 50
    assert [p for p in patterns if not required_literals(p)] == []
