"""The pure domain of wafile: no I/O, no clock, no framework imports.

Only the standard library and `wafile.core` may be imported here; an import-linter
contract (pyproject.toml) enforces it.
"""
