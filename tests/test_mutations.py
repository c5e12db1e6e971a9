"""The mutation records still apply: each original text occurs exactly once in its file, and its tests exist."""

from __future__ import annotations

import pytest

from mutations import MUTATIONS
from mutations.run import ROOT, StaleMutationError, apply, occurrences


@pytest.mark.parametrize("mutation", MUTATIONS, ids=lambda m: m.name)
def test_every_mutation_still_applies_to_its_file(mutation):
    assert occurrences(mutation) == 1, f"{mutation.file}: update the record {mutation.name} to the code it guards"
    assert mutation.replacement != mutation.original
    for test in mutation.tests:
        assert (ROOT / test.split("::")[0]).is_file(), test


def test_a_record_that_no_longer_matches_is_refused(tmp_path):
    mutation = MUTATIONS[0]
    (tmp_path / mutation.file).parent.mkdir(parents=True)
    (tmp_path / mutation.file).write_text("nothing of the original\n")
    with pytest.raises(StaleMutationError, match=mutation.name):
        apply(mutation, tmp_path)


def test_names_are_unique():
    assert len({m.name for m in MUTATIONS}) == len(MUTATIONS)
