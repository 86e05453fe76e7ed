"""Evenly spaced subsets of a split."""

from semflow.evaluation.subset import evenly_spaced_indices


def test_evenly_spaced_indices_span_the_split():
    assert evenly_spaced_indices(233, 100)[0] == 0 and evenly_spaced_indices(233, 100)[-1] == 232
    assert len(evenly_spaced_indices(233, 100)) == 100
    assert evenly_spaced_indices(10, 4) == [0, 3, 6, 9]
    assert evenly_spaced_indices(10, 0) is None and evenly_spaced_indices(10, 10) is None
