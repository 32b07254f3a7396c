from __future__ import annotations

from redis import Redis

from app.store.metrics import DELIVERIES
from app.store.redis_conn import connect
from app.web.tally import Tally
from simulator.sandbox import free_port


def test_counts_wait_in_the_process_while_redis_is_down(redis: Redis) -> None:
    tally = Tally()
    tally.add("issues", "ignored")
    tally.add("issues", "ignored")
    tally.add("marketplace_purchase", "ignored")
    down = connect(f"redis://127.0.0.1:{free_port()}/0")
    tally.flush(down)  # refused: kept for the next flush
    down.close()
    tally.flush(redis)
    tally.flush(redis)  # nothing new: nothing added twice
    assert redis.hgetall(DELIVERIES) == {b"issues|ignored": b"2", b"other|ignored": b"1"}


def test_forged_event_names_are_held_as_one(redis: Redis) -> None:
    tally = Tally()
    for i in range(1000):  # unsigned requests are counted too, under any header they send
        tally.add(f"forged-{i}", "ignored")
    summary = tally.summary() or ""
    assert "forged" not in summary and "1000" in summary
    tally.flush(redis)
    assert redis.hgetall(DELIVERIES) == {b"other|ignored": b"1000"}
