"""The grading machinery: marked regions, starters, plugging, the check runner, the selfcheck.

Rules: grading is deterministic (hypothesis derandomized, seeded simulations), offline, and
every check runs under a wall-clock limit that also stops an infinite loop inside hypothesis.
"""
