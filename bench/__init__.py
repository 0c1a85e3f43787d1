"""Orchid's benchmark harness: `python -m bench --quick|--full` (or `make bench`).

Everything here imports only the standard library at module level, because the peer contenders
(dlt, Airbyte) run ``python -m bench.contenders.<name>`` inside virtualenvs of their own that have
neither Orchid's dependencies nor ours.
"""
