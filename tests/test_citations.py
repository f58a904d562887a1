"""Citation parsing and renumbering: pure functions."""

from __future__ import annotations

from rag.citations import numbers_in, parse, renumber, with_markers


def test_marker_forms() -> None:
    assert numbers_in("1") == [1]
    assert numbers_in("1, 3") == [1, 3]
    assert numbers_in("1-3") == [1, 2, 3]
    assert numbers_in("2–4; 7") == [2, 3, 4, 7]
    assert numbers_in("1-900") == [1, 900]  # a garbage range is not expanded


def test_parse_sentences_and_citations() -> None:
    parsed = parse(
        "SAM seeks flat minima [1]. It helps on CIFAR [1, 3]. Both agree [2][4]. Ranges work [1-3]."
    )
    assert [p.citations for p in parsed] == [[1], [1, 3], [2, 4], [1, 2, 3]]
    assert parsed[0].text == "SAM seeks flat minima."


def test_markers_after_the_full_stop_belong_to_the_sentence_before() -> None:
    parsed = parse("SAM seeks flat minima. [2] It generalises better.")
    assert parsed[0].citations == [2]
    assert parsed[1].citations == []


def test_invalid_numbers_are_removed_and_counted() -> None:
    parsed = parse("A claim [1][7]. Another [3]. A third [9].")
    mapping, invalid = renumber(parsed, valid={1, 2, 3})
    assert invalid == 2
    assert mapping == {1: 1, 3: 2}
    assert [p.citations for p in parsed] == [[1], [2], []]


def test_with_markers() -> None:
    assert with_markers("A result.", [1, 2]) == "A result [1][2]."
    assert with_markers("No period", [3]) == "No period [3]"
    assert with_markers("Uncited.", []) == "Uncited."
