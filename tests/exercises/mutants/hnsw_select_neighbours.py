"""Wrong neighbour selections a learner might write."""

from exercises._grading.mutants import Mutant

_KEEP = "if not kept or pair_dists[i, kept].min() >= candidate_dists[i]:"

MUTANTS = [
    Mutant(
        "nearest-m",
        "keeps the nearest m candidates regardless of diversity (the 'simple' selection)",
        body="""
            order = np.argsort(candidate_dists, kind="stable")
            return candidate_ids[order[:m]]
        """,
    ),
    Mutant(
        "strictly-closer",
        "keeps a candidate only if strictly closer to the base than to every kept one",
        replace=((_KEEP, _KEEP.replace(">=", ">")),),
    ),
    Mutant(
        "only-last-kept",
        "compares with the most recently kept neighbour only",
        replace=((_KEEP, "if not kept or pair_dists[i, kept[-1]] >= candidate_dists[i]:"),),
    ),
    Mutant(
        "unsorted",
        "visits candidates in the order given instead of nearest first",
        replace=(
            (
                'order = np.argsort(candidate_dists, kind="stable")',
                "order = np.arange(len(candidate_dists))",
            ),
        ),
    ),
    Mutant(
        "positions-not-ids",
        "returns candidate positions instead of candidate ids",
        replace=(
            (
                "return candidate_ids[np.asarray(kept, dtype=np.int64)]",
                "return np.asarray(kept, dtype=np.int64)",
            ),
        ),
    ),
    Mutant(
        "keep-pruned",
        "tops the list up with pruned candidates until m are kept (keepPrunedConnections)",
        replace=(
            (
                "return candidate_ids[np.asarray(kept, dtype=np.int64)]",
                "rest = [i for i in order.tolist() if i not in kept]\nkept = (kept + rest)[:m]\nreturn candidate_ids[np.asarray(kept, dtype=np.int64)]",
            ),
        ),
    ),
    Mutant(
        "wrong-direction",
        "keeps a candidate when it is closer to a kept neighbour than to the base",
        replace=((_KEEP, "if not kept or pair_dists[i, kept].min() <= candidate_dists[i]:"),),
    ),
]
