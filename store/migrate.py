"""``python -m store.migrate``: apply the migrations to the database the settings point at.

Options:
  --revision REV        migrate to REV instead of head
  --rotate-secrets      after migrating, re-encrypt every stored secret with the first key of
                        SECRETS_ENCRYPTION_KEYS (see the rotation procedure in store/crypto.py)
  --maintain-partitions create the next months' rate_limit_states partitions and drop those
                        older than 13 months (run it daily, e.g. from cron)
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool

from settings.model import Settings
from store import rate_limits_repo
from store.crypto import SecretBox
from store.migrations import upgrade_head_async
from store.rekey import rotate_secrets

log = logging.getLogger("store.migrate")


async def run(settings: Settings, *, revision: str, rotate: bool, maintain: bool) -> None:
    dsn = settings.database.dsn
    await upgrade_head_async(dsn, revision)
    log.info("database migrated to %s", revision)
    if not (rotate or maintain):
        return
    engine = create_async_engine(dsn, poolclass=NullPool)
    sessions = async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
    try:
        if rotate:
            async with sessions.begin() as session:
                count = await rotate_secrets(session, SecretBox(settings.secrets.keys))
            log.info("re-encrypted %d secret value(s) with the first key", count)
        if maintain:
            now = datetime.now(UTC)
            async with sessions.begin() as session:
                created = await rate_limits_repo.ensure_partitions(session, start=now.date(), months=3)
                dropped = await rate_limits_repo.drop_expired_partitions(session, now=now)
            log.info("partitions created: %s; dropped: %s", created or "none", dropped or "none")
    finally:
        await engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m store.migrate", description=__doc__.splitlines()[0])
    parser.add_argument("--revision", default="head")
    parser.add_argument("--rotate-secrets", action="store_true")
    parser.add_argument("--maintain-partitions", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    settings = Settings.from_env()
    asyncio.run(
        run(settings, revision=args.revision, rotate=args.rotate_secrets, maintain=args.maintain_partitions)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
