"""One module per contender, each run as ``python -m bench.contenders.<name>`` in its own process.

Every contender takes ``--base-url`` and ``--scenario-json`` (bench.scenarios.Scenario), does the
scenario's work against the mock API and prints one ``BENCH_RESULT {...}`` JSON line
(bench.contenders.common.report). Modules here import only the standard library at import time,
apart from the framework the contender measures.
"""
