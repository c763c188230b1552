"""Notifications' state in Redis: what it knows of each idea and its people, everyone's preferences, each
person's in-app feed, the daily digests and the ideas that still wait to be acknowledged.

A person is their pseudonym in every key and value; no address or name is kept in the clear. How to reach a person
is their sealed contact (``contact:<pseudonym>``, ``{"email", "name"}`` sealed under their data key), opened with
the keyring only when a mail is sent. Keys under ``<prefix>:notifications:``::

    idea:<id>                  hash: title, language, organisations, areas, state, routed_at, routed_event_id
    idea:<id>:submitter        {"person": <pseudonym>, "language"} or "" (anonymous, or the submitter was erased)
    idea:<id>:followers        set of pseudonyms
    person:<pseudonym>:ideas   the ideas a person submitted or follows (what their erasure visits)
    contact:<pseudonym>        their sealed contact (the newest under a live key)
    prefs:<pseudonym>          hash: version, prefs (the PreferencesChanged JSON: channels ..., contact sealed)
    subs:area:<area>, subs:org:<org>   pseudonyms following an area or an organisation
    feed:<pseudonym>           list of feed items (newest first); announced on the channel live:<pseudonym>
    digest:<day>, digest:<day>:<pseudonym>   who gets a daily digest and its items
    erased:<pseudonym>         when the person was erased (epoch seconds): what was sealed under a key made
                               before it stays erased, even if the key outlived the event somewhere

Everything here but the queue of deliveries still to make is rebuilt from the topics by
``python -m services.notifications.rebuild``.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict
from datetime import date, datetime

from redis.asyncio import Redis

from services.notifications.domain import Contact, FeedItem, IdeaFacts, Preferences
from shared.events import IdeaRouted, PreferencesChanged, RoutingTarget, Sealed
from shared.idempotency import EFFECT_KEY_TTL_S
from shared.lifecycle import AWAITING_ACKNOWLEDGEMENT

# Deliver once: the delivery key is set, the item pushed and announced (as shown: ARGV[4]) in one step, or none.
_DELIVER_ONCE = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', tonumber(ARGV[3])) then
  redis.call('LPUSH', KEYS[2], ARGV[1])
  redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[2]) - 1)
  redis.call('PUBLISH', KEYS[3], ARGV[4])
  return 1
end
return 0
"""

# A person erased: the items of other people's feeds and digests (KEYS: lists and hashes) that quote their words
# (item.by == ARGV[1]) read as removed from now on.
_UNQUOTE = """
local changed = 0
local function unquoted(raw)
  local item = cjson.decode(raw)
  if item['by'] ~= ARGV[1] then return nil end
  item['text'] = item['removed']
  item['by'] = nil
  item['removed'] = nil
  return cjson.encode(item)
end
for _, key in ipairs(KEYS) do
  local kind = redis.call('TYPE', key)['ok']
  if kind == 'list' then
    for i, raw in ipairs(redis.call('LRANGE', key, 0, -1)) do
      local again = unquoted(raw)
      if again then redis.call('LSET', key, i - 1, again); changed = changed + 1 end
    end
  elseif kind == 'hash' then
    local all = redis.call('HGETALL', key)
    for i = 1, #all, 2 do
      local again = unquoted(all[i + 1])
      if again then redis.call('HSET', key, all[i], again); changed = changed + 1 end
    end
  end
end
return changed
"""

# Preferences: the newest state wins (replays and the API may apply the same event twice, in any order);
# the subscriber sets of areas and organisations follow, and so does the person's sealed contact.
_APPLY_PREFERENCES = """
local current = redis.call('HGET', KEYS[1], 'version')
if current and tonumber(current) > tonumber(ARGV[1]) then return 0 end
local old = redis.call('HGET', KEYS[1], 'prefs')
if old then
  local o = cjson.decode(old)
  for _, a in ipairs(o['areas']) do redis.call('SREM', ARGV[3] .. 'subs:area:' .. a, ARGV[4]) end
  for _, g in ipairs(o['organisations']) do redis.call('SREM', ARGV[3] .. 'subs:org:' .. g, ARGV[4]) end
end
local n = cjson.decode(ARGV[2])
for _, a in ipairs(n['areas']) do redis.call('SADD', ARGV[3] .. 'subs:area:' .. a, ARGV[4]) end
for _, g in ipairs(n['organisations']) do redis.call('SADD', ARGV[3] .. 'subs:org:' .. g, ARGV[4]) end
redis.call('HSET', KEYS[1], 'version', ARGV[1], 'prefs', ARGV[2])
redis.call('SET', ARGV[3] .. 'contact:' .. ARGV[4], ARGV[5])
return 1
"""


# A person's erasure: their feed, contact, preferences (and their place in the subscriber sets), their place among
# each idea's followers and as its submitter (the idea stays, the submitter becomes nobody), in one step.
# KEYS: erased marker, feed, contact, prefs, person's ideas; ARGV: prefix, pseudonym, erased at, end-of-stream message
_FORGET_PERSON = """
local at = tonumber(ARGV[3])
local marked = redis.call('GET', KEYS[1])
if (not marked) or tonumber(marked) < at then redis.call('SET', KEYS[1], ARGV[3]) end
local prefs = redis.call('HGET', KEYS[4], 'prefs')
if prefs then
  local o = cjson.decode(prefs)
  for _, a in ipairs(o['areas']) do redis.call('SREM', ARGV[1] .. 'subs:area:' .. a, ARGV[2]) end
  for _, g in ipairs(o['organisations']) do redis.call('SREM', ARGV[1] .. 'subs:org:' .. g, ARGV[2]) end
end
local ideas = redis.call('SMEMBERS', KEYS[5])
for _, idea in ipairs(ideas) do
  redis.call('SREM', ARGV[1] .. 'idea:' .. idea .. ':followers', ARGV[2])
  local submitter = redis.call('GET', ARGV[1] .. 'idea:' .. idea .. ':submitter')
  if submitter and submitter ~= '' and cjson.decode(submitter)['person'] == ARGV[2] then
    redis.call('SET', ARGV[1] .. 'idea:' .. idea .. ':submitter', '')
  end
end
local forgotten = redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[5])
redis.call('PUBLISH', ARGV[1] .. 'live:' .. ARGV[2], ARGV[4])
return forgotten + #ideas
"""

END_OF_STREAM = '{"end": "erased"}'
"""Announced on a person's live channel when they are erased: every process ends their open streams."""


class NotificationStore:
    def __init__(self, redis: Redis, prefix: str, feed_length: int, *, effect_ttl_s: int = EFFECT_KEY_TTL_S) -> None:
        self.redis = redis
        self.prefix = f"{prefix}:notifications"
        self.feed_length = feed_length
        self.effect_ttl_s = effect_ttl_s  # delivered and digest-sent marks expire; state does not
        self._deliver = redis.register_script(_DELIVER_ONCE)
        self._apply_preferences = redis.register_script(_APPLY_PREFERENCES)
        self._forget_person = redis.register_script(_FORGET_PERSON)
        self._unquote = redis.register_script(_UNQUOTE)

    def key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    # --- ideas ------------------------------------------------------------------------------------

    async def remember_submission(
        self, idea_id: str, contact: Contact | None, *, title: str = "", language: str = "sv"
    ) -> None:
        """Record that the idea's submission has been seen, and who its submitter is (a pseudonym), if anyone. The
        submitter key is what the waiting room asks (services/notifications/waiting.py)."""
        value = json.dumps(asdict(contact)) if contact else ""
        # In this order (one pipeline): once the submitter key exists (what ``admit`` asks), the title is there too.
        await asyncio.gather(
            self.redis.hset(self.key("idea", idea_id), mapping={"title": title, "language": language}),
            *([self.redis.sadd(self.key("person", contact.person, "ideas"), idea_id)] if contact else []),
            self.redis.set(self.key("idea", idea_id, "submitter"), value),
        )

    async def record_routing(self, idea_id: str, routed: IdeaRouted, event_id: str, at: datetime) -> None:
        """The idea's current routing; the time and event of its first routing start the response-time clock."""
        idea = self.key("idea", idea_id)
        organisations = json.dumps([t.model_dump(mode="json") for t in routed.organisations])
        fields = {"organisations": organisations, "areas": json.dumps([a.area for a in routed.areas])}
        if routed.title:
            fields["title"] = routed.title
        *_, state = await asyncio.gather(
            self.redis.hset(idea, mapping=fields),
            self.redis.hsetnx(idea, "routed_at", at.timestamp()),
            self.redis.hsetnx(idea, "routed_event_id", event_id),
            self.redis.hget(idea, "state"),
        )
        if state is None or state in AWAITING_ACKNOWLEDGEMENT:
            await self.redis.zadd(self.key("open"), {idea_id: at.timestamp()}, nx=True)

    async def record_state(self, idea_id: str, state: str) -> None:
        await self.redis.hset(self.key("idea", idea_id), "state", state)
        if state not in AWAITING_ACKNOWLEDGEMENT:
            await self.redis.zrem(self.key("open"), idea_id)

    async def add_follower(self, idea_id: str, person: str) -> None:
        await asyncio.gather(
            self.redis.sadd(self.key("idea", idea_id, "followers"), person),
            self.redis.sadd(self.key("person", person, "ideas"), idea_id),
        )

    async def facts(self, idea_id: str) -> IdeaFacts:
        idea, submitter, followers = await asyncio.gather(
            self.redis.hgetall(self.key("idea", idea_id)),
            self.redis.get(self.key("idea", idea_id, "submitter")),
            self.redis.smembers(self.key("idea", idea_id, "followers")),
        )
        return IdeaFacts(
            idea_id=idea_id,
            title=idea.get("title", ""),
            language=idea.get("language", "sv"),
            submitter=Contact(**json.loads(submitter)) if submitter else None,
            organisations=tuple(RoutingTarget(**t) for t in json.loads(idea.get("organisations", "[]"))),
            areas=tuple(json.loads(idea.get("areas", "[]"))),
            followers=frozenset(followers),
            state=idea.get("state"),
        )

    async def routing_clock(self, idea_id: str) -> tuple[float, str] | None:
        routed_at, event_id = await self.redis.hmget(self.key("idea", idea_id), ["routed_at", "routed_event_id"])
        return (float(routed_at), event_id) if routed_at and event_id else None

    async def open_ideas(self, limit: int = 10_000) -> list[str]:
        """Ideas routed but not yet acknowledged, oldest first."""
        return list(await self.redis.zrange(self.key("open"), 0, limit - 1))

    # --- people: contacts and erasures ----------------------------------------------------------------

    async def remember_contact(self, person: str, sealed: Sealed) -> None:
        """How to reach the person: their ``{"email", "name"}`` sealed under their (live) data key."""
        await self.redis.set(self.key("contact", person), sealed.model_dump_json())

    async def contact(self, person: str) -> Sealed | None:
        raw = await self.redis.get(self.key("contact", person))
        return Sealed.model_validate_json(raw) if raw else None

    async def erased_at(self, people: list[str]) -> dict[str, float]:
        """When each of ``people`` that was erased was erased (epoch seconds); the others are left out."""
        if not people:
            return {}
        values = await self.redis.mget([self.key("erased", person) for person in people])
        return {person: float(value) for person, value in zip(people, values, strict=True) if value}

    async def mark_erased(self, person: str, at: float) -> None:
        """Remember when the person was erased (the rebuild, before it replays anything of theirs)."""
        await self.redis.set(self.key("erased", person), f"{at:.6f}")

    async def forget_person(self, person: str, at: float) -> int:
        """Forget everything about the person (erased at ``at``): feed, contact, preferences and their place in
        the subscriber sets, their place among followers and as submitter (the ideas stay), their queued digests;
        their open live streams end; their comments quoted in other people's feeds and digests read as removed.
        Returns how many keys, memberships and items went."""
        prefix = self.key("")
        audience = await self._heard_them(person)
        keys = [
            self.key("erased", person),
            self.key("feed", person),
            self.key("contact", person),
            self.key("prefs", person),
            self.key("person", person, "ideas"),
        ]
        forgotten = int(await self._forget_person(keys=keys, args=[prefix, person, f"{at:.6f}", END_OF_STREAM]))
        quoting = [self.key("feed", other) for other in audience]
        async for key in self.redis.scan_iter(match=self.key("digest", "*"), count=1000):
            day = key.removeprefix(self.key("digest", ""))
            if day.endswith(f":{person}"):
                forgotten += await self.redis.delete(key)
            elif ":" not in day:
                forgotten += await self.redis.srem(key, person)
            elif day.split(":", 1)[1] in audience:
                quoting.append(key)
        for start in range(0, len(quoting), 100):
            forgotten += int(await self._unquote(keys=quoting[start : start + 100], args=[person]))
        return forgotten

    async def _heard_them(self, person: str) -> set[str]:
        """Who may have heard the person's words: the submitters and followers of the ideas they follow (a
        commenter follows the idea they comment on)."""
        ideas = list(await self.redis.smembers(self.key("person", person, "ideas")))
        audience: set[str] = set()
        for idea in ideas:
            submitter, followers = await asyncio.gather(
                self.redis.get(self.key("idea", idea, "submitter")),
                self.redis.smembers(self.key("idea", idea, "followers")),
            )
            audience |= set(followers)
            if submitter:
                audience.add(json.loads(submitter)["person"])
        audience.discard(person)
        return audience

    # --- preferences ------------------------------------------------------------------------------

    async def apply_preferences(self, changed: PreferencesChanged, at: datetime) -> bool:
        """Apply one preferences event unless a newer one has been applied already."""
        state = json.dumps(changed.model_dump(mode="json"))
        contact = changed.contact.model_dump_json()
        return bool(
            await self._apply_preferences(
                keys=[self.key("prefs", changed.person)],
                args=[f"{at.timestamp():.6f}", state, self.key(""), changed.person, contact],
            )
        )

    async def preferences(self, person: str) -> Preferences:
        return (await self.preferences_of([person]))[person]

    async def preferences_of(self, people: list[str]) -> dict[str, Preferences]:
        if not people:
            return {}
        values = await asyncio.gather(*(self.redis.hget(self.key("prefs", person), "prefs") for person in people))
        return {
            person: Preferences.of(PreferencesChanged.model_validate_json(value)) if value else Preferences()
            for person, value in zip(people, values, strict=True)
        }

    async def subscribers(self, areas: tuple[str, ...], organisations: tuple[str, ...]) -> set[str]:
        keys = [self.key("subs", "area", a) for a in areas] + [self.key("subs", "org", o) for o in organisations]
        return set(await self.redis.sunion(keys)) if keys else set()

    # --- in-app feed ------------------------------------------------------------------------------

    def live_channel(self, person: str) -> str:
        return self.key("live", person)

    async def deliver_in_app(self, item: FeedItem) -> bool:
        """Push the item to the recipient's feed once; False when it had been delivered before."""
        keys = [
            self.key("delivered", item.notification_id),
            self.key("feed", item.recipient),
            self.live_channel(item.recipient),
        ]
        kept = asdict(item)
        shown = json.dumps(_shown(kept))
        return bool(await self._deliver(keys=keys, args=[json.dumps(kept), self.feed_length, self.effect_ttl_s, shown]))

    async def feed(self, person: str, limit: int) -> list[dict]:
        """The person's feed, newest first, as it may be shown."""
        return [_shown(json.loads(raw)) for raw in await self.redis.lrange(self.key("feed", person), 0, limit - 1)]

    async def feed_after(self, person: str, notification_id: str) -> list[dict]:
        """The person's feed items newer than ``notification_id``, oldest first (what a stream resumed with
        ``Last-Event-ID`` has missed); none when that item is no longer in the feed."""
        items = await self.feed(person, self.feed_length)
        for index, item in enumerate(items):
            if item.get("notification_id") == notification_id:
                return items[:index][::-1]
        return []

    # --- daily digests ----------------------------------------------------------------------------

    async def add_to_digest(self, day: date, item: FeedItem, language: str) -> None:
        """A day's digest items are needed until that day's digest is sent: they expire with its done mark, so a day
        whose mark has expired has nothing left to send twice."""
        value = json.dumps({**asdict(item), "language": language})
        people, items = self.key("digest", day.isoformat()), self.key("digest", day.isoformat(), item.recipient)
        await asyncio.gather(
            self.redis.sadd(people, item.recipient),
            self.redis.hset(items, item.notification_id, value),
            self.redis.expire(people, self.effect_ttl_s),
            self.redis.expire(items, self.effect_ttl_s),
        )

    async def digest_people(self, day: date) -> list[str]:
        return sorted(await self.redis.smembers(self.key("digest", day.isoformat())))

    async def digest_items(self, day: date, person: str) -> list[dict]:
        values = await self.redis.hvals(self.key("digest", day.isoformat(), person))
        return sorted((json.loads(v) for v in values), key=lambda item: (item["time"], item["notification_id"]))

    async def digest_done(self, day: date) -> bool:
        return bool(await self.redis.exists(self.key("digest", day.isoformat(), "done")))

    async def mark_digest_done(self, day: date) -> None:
        await self.redis.set(self.key("digest", day.isoformat(), "done"), 1, ex=self.effect_ttl_s)


def _shown(item: dict) -> dict:
    """A feed item as the person sees it: without what it keeps about whose words it quotes."""
    return {name: value for name, value in item.items() if name not in FeedItem.PRIVATE}
