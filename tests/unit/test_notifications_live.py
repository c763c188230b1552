"""The in-process fan-out of live streams (services/notifications/live.py), without Redis: caps, a slow client
dropped without holding up the others, places freed on close, a person's streams ended when they are erased.
People are their pseudonyms here, as in the channel names."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from services.notifications.live import END, ERASED, LiveStreams, TooManyStreams, _glob_escape
from shared.sealing import pseudonym
from tests.support.kafka import eventually

PREFIX = "kiruna:notifications:live:"
ANNA, PER, ERIK = (pseudonym(b"test-pseudonym-pepper", f"{who}@kiruna.se") for who in ("anna", "per", "erik"))


def hub(per_person: int = 3, max_streams: int = 5, queue_size: int = 2) -> LiveStreams:
    return LiveStreams(channel_prefix=PREFIX, per_person=per_person, max_streams=max_streams, queue_size=queue_size)


def item(n: int) -> str:
    return json.dumps({"notification_id": f"n{n}"})


async def test_items_go_to_every_stream_of_their_person_only():
    streams = hub()
    anna1, anna2, per = streams.open(ANNA), streams.open(ANNA), streams.open(PER)
    assert streams.dispatch(PREFIX + ANNA, item(1)) == 2
    assert streams.dispatch("other:channel", item(2)) == 0
    assert anna1.queue.get_nowait() == anna2.queue.get_nowait() == item(1)
    assert per.queue.empty()


async def test_a_slow_client_is_dropped_and_the_others_go_on():
    streams = hub(queue_size=2)
    slow, quick = streams.open(ANNA), streams.open(ANNA)
    for n in range(3):
        streams.dispatch(PREFIX + ANNA, item(n))
        quick.queue.get_nowait()  # the quick client takes each item at once
    assert slow.queue.get_nowait() is END and slow.queue.empty()  # its backlog dropped, told to end
    assert streams.count == 1 and slow.closed and not quick.closed
    assert streams.dispatch(PREFIX + ANNA, item(4)) == 1


async def test_streams_are_capped_per_person_and_in_all_and_closing_frees_a_place():
    streams = hub(per_person=2, max_streams=3)
    first = streams.open(ANNA)
    streams.open(ANNA)
    with pytest.raises(TooManyStreams) as person_cap:
        streams.open(ANNA)
    assert person_cap.value.setting == "streams_per_person"
    streams.open(PER)
    with pytest.raises(TooManyStreams) as all_cap:
        streams.open(ERIK)
    assert all_cap.value.setting == "streams_max" and "NOTIFICATIONS_STREAMS_MAX" in all_cap.value.detail
    streams.close(first)
    streams.close(first)  # twice is harmless
    assert streams.count == 2
    streams.open(ERIK)


async def test_ending_all_streams_ends_each_one():
    streams = hub()
    opened = [streams.open(ANNA), streams.open(PER)]
    streams.end_all("service-stopping")
    assert [await asyncio.wait_for(s.queue.get(), 1) for s in opened] == [END, END] and streams.count == 0


async def test_an_erased_persons_streams_end_and_the_others_go_on():
    streams = hub()
    annas, per = [streams.open(ANNA), streams.open(ANNA)], streams.open(PER)
    assert streams.dispatch(PREFIX + ANNA, ERASED) == 0
    assert [s.queue.get_nowait() for s in annas] == [END, END] and all(s.closed for s in annas)
    assert streams.count == 1 and not per.closed and streams.dispatch(PREFIX + PER, item(1)) == 1


def test_the_pattern_matches_only_the_prefix():
    assert _glob_escape("a*b?[c]") == r"a\*b\?\[c\]"


async def test_a_stream_marks_its_person_listened_to_before_it_is_answered():
    marked: list[list[str]] = []

    async def listening(people: list[str]) -> None:
        marked.append(people)

    streams = LiveStreams(channel_prefix=PREFIX, per_person=2, max_streams=5, queue_size=2, listening=listening)
    stream = await streams.open_announced(ANNA)
    assert marked == [[ANNA]] and streams.count == 1
    streams.close(stream)


async def test_a_stream_whose_mark_fails_is_not_opened():
    async def listening(people: list[str]) -> None:
        raise ConnectionError("redis away")

    streams = LiveStreams(channel_prefix=PREFIX, per_person=2, max_streams=5, queue_size=2, listening=listening)
    with pytest.raises(ConnectionError):
        await streams.open_announced(ANNA)
    assert streams.count == 0


class QuietPubSub:
    """A subscription on which nothing is announced; the answer to a ping reads as None, as redis-py gives it."""

    def __init__(self) -> None:
        self.pings = 0
        self.reads = 0

    async def psubscribe(self, pattern: str) -> None:
        pass

    async def get_message(self, *, ignore_subscribe_messages: bool, timeout: float) -> None:
        self.reads += 1
        await asyncio.sleep(0.001)  # answers at once (a pong), or would wait ``timeout``
        return None

    async def ping(self) -> None:
        self.pings += 1

    async def aclose(self) -> None:
        pass


class QuietRedis:
    def __init__(self, pubsub: QuietPubSub) -> None:
        self._pubsub = pubsub

    def pubsub(self) -> QuietPubSub:
        return self._pubsub

    async def aclose(self) -> None:
        pass


async def test_the_subscription_pings_only_after_a_quiet_while_not_after_each_pong():
    quiet = QuietPubSub()
    streams = hub()
    async with streams.listening(lambda: QuietRedis(quiet), logging.getLogger("test")):  # type: ignore[arg-type]
        # many quiet reads (each answered at once), far less than PING_S of quiet
        await eventually(lambda: quiet.reads > 10, timeout=10, interval=0.01)
    assert quiet.pings == 0  # none before PING_S of quiet (it used to ping after every read that gave None)
