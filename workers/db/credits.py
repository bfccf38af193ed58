"""Credit balances per licence key (``key_accounts``). ``None`` means unmetered.

Charging is one conditional UPDATE (``credits >= amount``), so two concurrent charges can
never take a balance below zero; callers that charge once per thing (a video's download)
record that in the same transaction.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from workers.db.models import KeyAccount


def balance(session: Session, key_id: str) -> int | None:
    return session.scalar(select(KeyAccount.credits).where(KeyAccount.key_id == key_id))


def set_credits(session: Session, key_id: str, credits: int | None) -> None:
    account = session.get(KeyAccount, key_id)
    if account is None:
        session.add(KeyAccount(key_id=key_id, credits=credits))
    else:
        account.credits = credits


def add_credits(session: Session, key_id: str, amount: int) -> int:
    """Add ``amount`` (a metered balance starts at 0 if the key was unmetered); the new balance."""
    account = session.get(KeyAccount, key_id, with_for_update=True)
    if account is None:
        account = KeyAccount(key_id=key_id, credits=0)
        session.add(account)
    account.credits = (account.credits or 0) + amount
    session.flush()
    return account.credits


def try_charge(session: Session, key_id: str, amount: int) -> bool:
    """Take ``amount`` if the key is unmetered or has enough; False (nothing taken) otherwise."""
    if balance(session, key_id) is None:
        return True
    result = session.execute(
        update(KeyAccount)
        .where(KeyAccount.key_id == key_id, KeyAccount.credits >= amount)
        .values(credits=KeyAccount.credits - amount)
    )
    return result.rowcount == 1
