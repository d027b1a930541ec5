"""Shared pytest hooks: the fuzz tests' counts, printed at the end of every run.

A test records its figures with ``record_property("fuzz", "<one line>")``; the line travels with
the test report (also from pytest-xdist workers) and is printed in a "fuzz" section of the
terminal summary, so ``make test`` shows how many files and link sequences were tried.
"""

FUZZ = "fuzz"
_lines = []


def pytest_runtest_logreport(report):
    if report.when == "call":
        _lines.extend(f"{value} [{report.outcome}]" for key, value in report.user_properties
                      if key == FUZZ)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if _lines:
        terminalreporter.section(FUZZ)
        for line in sorted(_lines):
            terminalreporter.write_line(line)
