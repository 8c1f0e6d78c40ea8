import pytest

from ragspec.eval.metrics import exact_match, f1_score, normalize_answer
from ragspec.decoding.text import trim_at_stop


def test_squad_normalisation_and_scores():
    assert normalize_answer("The  Battle of Hastings!") == "battle of hastings"
    assert exact_match("the Battle of Hastings.", ["Battle of Hastings"]) == 1.0
    assert exact_match("Hastings", ["Battle of Hastings"]) == 0.0
    assert f1_score("Hastings", ["Battle of Hastings"]) == pytest.approx(2 * 1 * (1 / 3) / (1 + 1 / 3))
    assert f1_score("in 1066 at Hastings", ["1066", "Battle of Hastings"]) == pytest.approx(2 * 0.25 * 1 / 1.25)
    assert f1_score("", ["x"]) == 0.0 and f1_score("a", ["the"]) == 1.0  # both normalise to empty
    # Citations and anything after the first line are not part of the answer.
    assert exact_match("the Battle of Hastings [2]\nSources: ...", ["Battle of Hastings"]) == 1.0
    assert exact_match("1066 [1, 3]", ["1066"]) == 1.0


def test_trim_at_stop():
    assert trim_at_stop("Paris.\nQuestion: next", ["\nQuestion:", "###"]) == "Paris."
    assert trim_at_stop("Paris", ["###"]) == "Paris"
