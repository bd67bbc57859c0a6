"""Shared fixtures: a session-wide record of the worst deviations, printed after the run."""

import pytest

_WORST: dict[str, float] = {}


@pytest.fixture(scope="session")
def worst():
    """``worst(name, value)`` keeps the largest ``value`` seen per ``name``.

    The table is printed in pytest's terminal summary ("worst deviations").
    """

    def record(name: str, value: float) -> None:
        _WORST[name] = max(_WORST.get(name, 0.0), float(value))

    return record


def pytest_terminal_summary(terminalreporter):
    if _WORST:
        terminalreporter.section("worst deviations")
        for name in sorted(_WORST):
            terminalreporter.write_line(f"{name:64s} {_WORST[name]:10.3e}")
