"""The peer frameworks (dlt, Airbyte's low-code CDK), each in a virtualenv of its own.

They are bench-only: never dependencies of Orchid, never installed into Orchid's venv (their pins
clash with ours and with each other's), created on demand under ``.build/bench-venvs/``.
"""
