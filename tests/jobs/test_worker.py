from __future__ import annotations

import threading
import time
from typing import Any

from redis import Redis
from rq import Queue
from rq.worker import BaseWorker

from jobs.worker import ForgehandWorker
from tests.fakes import BurstWorker


def stops_listening(worker: BaseWorker) -> bool:
    """Whether the worker stops listening for commands within 10 s (not RQ's minute) when its
    main thread is slow between unsubscribing and stopping the listening thread."""
    worker.subscribe()  # type: ignore[no-untyped-call]  # RQ leaves it untyped
    pubsub = worker.pubsub
    assert pubsub is not None
    sent = pubsub.unsubscribe

    def slowly(*args: Any) -> Any:
        # The window in which the listener reads the reply and loops, waiting for a new
        # subscription: widened, so that every run takes the path some runs take.
        answer = sent(*args)  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
        time.sleep(0.5)
        return answer

    pubsub.unsubscribe = slowly  # type: ignore[method-assign]
    stopping = threading.Thread(target=worker.unsubscribe, daemon=True)
    stopping.start()
    stopping.join(10)
    return not stopping.is_alive()


def test_a_worker_stops_listening_for_commands_at_once(redis: Redis) -> None:
    queue = Queue("stop-test", connection=redis)
    # RQ's own Worker fails this (checked by hand: its listener then waits out the minute).
    assert stops_listening(ForgehandWorker([queue], connection=redis))
    # The tests' in-process worker too: with RQ's order, 30 tests waited out that minute.
    assert stops_listening(BurstWorker([queue], connection=redis))
