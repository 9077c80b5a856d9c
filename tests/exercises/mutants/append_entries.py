"""Wrong AppendEntries handlers a learner might write."""

from exercises._grading.mutants import Mutant

MUTANTS = [
    Mutant(
        "always-truncate",
        "truncates at prev_log_index + 1 whenever entries arrive, conflict or not",
        replace=(
            (
                "for position, entry in enumerate(entries):\n    existing = log.term_at(entry.index)\n    if existing != entry.term:\n        log.truncate_and_append(entries[position:])\n        break\n",
                "if entries:\n    log.truncate_and_append(entries)\n",
            ),
        ),
    ),
    Mutant(
        "commit-to-log-end",
        "commits up to the log's last index rather than the last entry this request proved",
        replace=(("min(leader_commit, last_new)", "min(leader_commit, log.last_index())"),),
    ),
    Mutant(
        "index-only-check",
        "checks that prev_log_index exists but not its term",
        replace=((" or log.term_at(prev_log_index) != prev_log_term", ""),),
    ),
    Mutant(
        "commit-is-leader-commit",
        "copies leader_commit as the commit index",
        replace=(
            ("max(commit_index, min(leader_commit, last_new))", "max(commit_index, leader_commit)"),
        ),
    ),
    Mutant(
        "match-is-log-end",
        "answers the log's last index as the match index",
        replace=(
            (
                "return AppendOutcome(True, last_new, LogIndex(new_commit))",
                "return AppendOutcome(True, log.last_index(), LogIndex(new_commit))",
            ),
        ),
    ),
    Mutant(
        "commit-goes-down",
        "forgets the max: a lagging leader_commit lowers the follower's commit index",
        replace=(
            ("max(commit_index, min(leader_commit, last_new))", "min(leader_commit, last_new)"),
        ),
    ),
    Mutant(
        "off-by-one-prev",
        "refuses when prev_log_index is the follower's last entry",
        replace=(
            (
                "if prev_log_index > log.last_index()",
                "if prev_log_index >= log.last_index() and prev_log_index > 0",
            ),
        ),
    ),
]
