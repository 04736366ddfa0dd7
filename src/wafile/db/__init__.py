"""The storage of record. All SQL of wafile lives in this package.

`engine.py` builds engines and sessions, `tables.py` declares the schema that the
Alembic migrations in `migrations/` create, and one repository module per aggregate
(`accounts.py`, `api_keys.py`, ...) holds the queries, returning `wafile.core` values.
"""
