"""A Redis transaction whose answer is lost: the fault a socket timeout or a broken connection
makes after the transaction went out (the store must not guess whether it was applied)."""

from __future__ import annotations

import redis


class AnswerLost:
    """The real pipeline; its EXEC is sent (``applied``) or not, and either way the caller
    gets a ConnectionError instead of the answer.  ``held``: transactions not sent, still
    WATCHing, for a test to send late."""

    def __init__(self, pipe, applied: bool, held: list) -> None:
        self._pipe, self._applied, self._held = pipe, applied, held

    def __getattr__(self, name):
        return getattr(self._pipe, name)

    async def execute(self):
        if self._applied:
            await self._pipe.execute()
        else:
            self._held.append(self._pipe)
        raise redis.exceptions.ConnectionError("the answer was lost")


def lose_answers(client, applied: bool) -> list:
    """From now on every transaction of ``client`` loses its answer (other pipelines work);
    returns the list of those held back (``applied=False``).  Undo: ``del client.pipeline``."""
    held: list = []
    real = client.pipeline

    def pipeline(**kwargs):
        pipe = real(**kwargs)
        return AnswerLost(pipe, applied, held) if kwargs.get("transaction", True) else pipe

    client.pipeline = pipeline
    return held
