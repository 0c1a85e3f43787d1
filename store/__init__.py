"""Orchid's persistence layer: tables, migrations, repositories and secret encryption.

Everything here is tenant-scoped: every table carries ``tenant_id`` as the first column of its
primary key, and every repository function takes the caller's tenant and filters by it.
"""
