"""Notifications' state in Redis: what it knows of each idea and its people, everyone's preferences, each
person's in-app feed, the daily digests, the ideas whose response-time targets still run, where people work (the
audiences of challenges) and the challenges still open.

A person is their pseudonym in every key and value; no address or name is kept in the clear. How to reach a person
is their sealed contact (``contact:<pseudonym>``, ``{"email", "name"}`` sealed under their data key), opened with
the keyring only when a mail is sent. Keys under ``<prefix>:notifications:``::

    idea:<id>                  hash: title, language, organisations, areas, state, submitted_at, routed_at,
                               routed_event_id
    idea:<id>:submitter        {"person": <pseudonym>, "language"} or "" (anonymous, or the submitter was erased)
    idea:<id>:followers        set of pseudonyms
    idea:<id>:assignees        hash: organisation -> the catalogue officer id it gave the idea to
    open                       sorted set: the ideas whose response-time targets still run (by first routing)
    person:<pseudonym>:ideas   the ideas a person submitted or follows (what their erasure visits)
    contact:<pseudonym>        their sealed contact (the newest under a live key)
    prefs:<pseudonym>          hash: version, prefs (the PreferencesChanged JSON: channels ..., contact sealed)
    subs:area:<area>, subs:org:<org>   pseudonyms following an area or an organisation
    feed:<pseudonym>           list of feed items (newest first); announced on the channel live:<pseudonym>
                               while live-on:<pseudonym> exists (a process has a live stream of theirs open)
    digest:<day>, digest:<day>:<pseudonym>   who gets a daily digest and its items
    erased:<pseudonym>         when the person was erased (epoch seconds): what was sealed under a key made
                               before it stays erased, even if the key outlived the event somewhere
    person:<pseudonym>:where   hash: organisation, unit, at (the newest of their events that named them)
    people:org:<org>, people:unit:<org>:<unit>   sorted sets: the people seen there, by when first seen there
    challenge:<id>             hash: challenge (the ChallengeOpened JSON), event_id
    challenges                 sorted set: the challenges not yet closed, by when they close

Everything here but the queue of deliveries still to make is rebuilt from the topics by
``python -m services.notifications.rebuild``.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict, fields
from datetime import date, datetime

from redis.asyncio import Redis

from services.notifications.challenges import Place
from services.notifications.domain import Contact, DeadlineClock, FeedItem, IdeaFacts, Preferences, current_state
from shared.events import ChallengeOpened, IdeaRouted, PreferencesChanged, RoutingTarget, Sealed
from shared.idempotency import EFFECT_KEY_TTL_S
from shared.lifecycle import STAGE_STATES

TARGETS_RUNNING = frozenset().union(*STAGE_STATES.values())
"""While an idea is in one of these states, one of its response-time targets still runs: it is checked."""

# Deliver once: the delivery key is set, the item pushed and announced (as shown: ARGV[4]) in one step, or none.
# It is announced only while some process has a live stream of the person open (KEYS[4], ``listening``): most
# people have none, and every announcement costs each process's subscription a message to read and drop.
_DELIVER_ONCE = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', tonumber(ARGV[3])) then
  redis.call('LPUSH', KEYS[2], ARGV[1])
  redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[2]) - 1)
  if redis.call('EXISTS', KEYS[4]) == 1 then redis.call('PUBLISH', KEYS[3], ARGV[4]) end
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


# Where a person works, from one of their events (KEYS: their where-hash; ARGV: prefix, pseudonym, organisation,
# unit or '', the event's time). The newest event says where they are now; an older one of the same place only
# makes them known there since earlier (a replay reads the submissions first).
_PLACE_KEYS = """
local function place_keys(org, unit)
  local keys = {ARGV[1] .. 'people:org:' .. org}
  if unit and unit ~= '' then table.insert(keys, ARGV[1] .. 'people:unit:' .. org .. ':' .. unit) end
  return keys
end
"""
_REMEMBER_WHERE = (
    _PLACE_KEYS
    + """
local old = redis.call('HMGET', KEYS[1], 'organisation', 'unit', 'at')
local at = tonumber(ARGV[5])
local same = old[1] == ARGV[3] and (old[2] or '') == ARGV[4]
if old[3] and tonumber(old[3]) > at and not same then return 0 end
if old[1] and not same then
  for _, k in ipairs(place_keys(old[1], old[2])) do redis.call('ZREM', k, ARGV[2]) end
end
for _, k in ipairs(place_keys(ARGV[3], ARGV[4])) do
  local since = redis.call('ZSCORE', k, ARGV[2])
  if (not since) or tonumber(since) > at then redis.call('ZADD', k, ARGV[5], ARGV[2]) end
end
if (not old[3]) or tonumber(old[3]) <= at then
  redis.call('HSET', KEYS[1], 'organisation', ARGV[3], 'unit', ARGV[4], 'at', ARGV[5])
end
return 1
"""
)


# A person's erasure: their feed, contact, preferences (and their place in the subscriber sets), their place among
# each idea's followers and as its submitter (the idea stays, the submitter becomes nobody), where they work, in
# one step. KEYS: erased marker, feed, contact, prefs, person's ideas, where; ARGV: prefix, pseudonym, erased at,
# end-of-stream message
_FORGET_PERSON = (
    _PLACE_KEYS
    + """
local at = tonumber(ARGV[3])
local marked = redis.call('GET', KEYS[1])
if (not marked) or tonumber(marked) < at then redis.call('SET', KEYS[1], ARGV[3]) end
local where = redis.call('HMGET', KEYS[6], 'organisation', 'unit')
if where[1] then
  for _, k in ipairs(place_keys(where[1], where[2])) do redis.call('ZREM', k, ARGV[2]) end
end
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
local forgotten = redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6])
redis.call('DEL', ARGV[1] .. 'live-on:' .. ARGV[2])
redis.call('PUBLISH', ARGV[1] .. 'live:' .. ARGV[2], ARGV[4])
return forgotten + #ideas
"""
)

LISTENING_S = 60
"""How long the mark ``live-on:<pseudonym>`` (a process has a live stream of theirs open) lasts unless renewed:
a process renews the marks of its open streams every third of it (``services/notifications/live.py``)."""

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
        self._remember_where = redis.register_script(_REMEMBER_WHERE)
        self._unquote = redis.register_script(_UNQUOTE)

    def key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    # --- ideas ------------------------------------------------------------------------------------

    async def remember_submission(
        self,
        idea_id: str,
        contact: Contact | None,
        *,
        title: str = "",
        language: str = "sv",
        at: datetime | None = None,
    ) -> None:
        """Record that the idea's submission has been seen (``at``: when it was submitted, where its response-time
        clock starts), and who its submitter is (a pseudonym), if anyone. The submitter key is what the waiting
        room asks (services/notifications/waiting.py)."""
        value = json.dumps(asdict(contact)) if contact else ""
        fields = {"title": title, "language": language}
        if at is not None:
            fields["submitted_at"] = str(at.timestamp())
        # In this order (one pipeline): once the submitter key exists (what ``admit`` asks), the title is there too.
        await asyncio.gather(
            self.redis.hset(self.key("idea", idea_id), mapping=fields),
            *([self.redis.sadd(self.key("person", contact.person, "ideas"), idea_id)] if contact else []),
            self.redis.set(self.key("idea", idea_id, "submitter"), value),
        )

    async def record_routing(self, idea_id: str, routed: IdeaRouted, event_id: str, at: datetime) -> None:
        """The idea's current routing; its first routing (time and event) puts it among the ideas whose targets
        are checked, and names their notices (``domain.deadline_cause``)."""
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
        if state is None or state in TARGETS_RUNNING:
            await self.redis.zadd(self.key("open"), {idea_id: at.timestamp()}, nx=True)

    async def record_state(self, idea_id: str, state: str) -> None:
        await self.redis.hset(self.key("idea", idea_id), "state", state)
        if state not in TARGETS_RUNNING:
            await self.redis.zrem(self.key("open"), idea_id)

    async def record_edit(self, idea_id: str, title: str, language: str) -> None:
        """The submitter's corrected title (and its language): what later news calls the idea."""
        await self.redis.hset(self.key("idea", idea_id), mapping={"title": title, "language": language})

    async def record_assignment(self, idea_id: str, organisation: str, assignee: str | None) -> None:
        """Who has the idea for ``organisation`` now (a catalogue officer id), or nobody (None)."""
        key = self.key("idea", idea_id, "assignees")
        if assignee is None:
            await self.redis.hdel(key, organisation)
        else:
            await self.redis.hset(key, organisation, assignee)

    async def add_follower(self, idea_id: str, person: str) -> None:
        await asyncio.gather(
            self.redis.sadd(self.key("idea", idea_id, "followers"), person),
            self.redis.sadd(self.key("person", person, "ideas"), idea_id),
        )

    async def facts(self, idea_id: str) -> IdeaFacts:
        idea, submitter, followers, assignees = await asyncio.gather(
            self.redis.hgetall(self.key("idea", idea_id)),
            self.redis.get(self.key("idea", idea_id, "submitter")),
            self.redis.smembers(self.key("idea", idea_id, "followers")),
            self.redis.hgetall(self.key("idea", idea_id, "assignees")),
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
            assignees=dict(assignees),
        )

    async def deadline_clock(self, idea_id: str) -> DeadlineClock | None:
        """The idea's response-time clock; None before it was routed."""
        submitted_at, routed_at, event_id, state = await self.redis.hmget(
            self.key("idea", idea_id), ["submitted_at", "routed_at", "routed_event_id", "state"]
        )
        start = submitted_at or routed_at
        return DeadlineClock(float(start), event_id, current_state(state)) if start and event_id else None

    async def open_ideas(self, limit: int = 10_000) -> list[str]:
        """Ideas routed whose response-time targets still run, oldest first."""
        return list(await self.redis.zrange(self.key("open"), 0, limit - 1))

    # --- challenges -----------------------------------------------------------------------------------

    async def remember_challenge(self, challenge: ChallengeOpened, event_id: str) -> None:
        """A challenge and its opening event, until it closes."""
        await asyncio.gather(
            self.redis.hset(
                self.key("challenge", challenge.challenge_id),
                mapping={"challenge": challenge.model_dump_json(), "event_id": event_id},
            ),
            self.redis.zadd(self.key("challenges"), {challenge.challenge_id: challenge.closes_at.timestamp()}),
        )

    async def open_challenges(self) -> list[tuple[ChallengeOpened, str]]:
        """The challenges not yet closed (as far as the store knows), soonest closing first, with their events."""
        found = []
        for challenge_id in await self.redis.zrange(self.key("challenges"), 0, -1):
            raw, event_id = await self.redis.hmget(self.key("challenge", challenge_id), ["challenge", "event_id"])
            if raw and event_id:
                found.append((ChallengeOpened.model_validate_json(raw), event_id))
        return found

    async def challenge_closed(self, challenge_id: str) -> None:
        """A closed challenge is told of no more."""
        await asyncio.gather(
            self.redis.zrem(self.key("challenges"), challenge_id),
            self.redis.delete(self.key("challenge", challenge_id)),
        )

    # --- where people work ------------------------------------------------------------------------------

    async def remember_where(self, person: str, organisation: str, unit: str | None, at: datetime) -> None:
        """Where ``person`` works, as an event of theirs at ``at`` names it (their newest event wins)."""
        await self._remember_where(
            keys=[self.key("person", person, "where")],
            args=[self.key(""), person, organisation, unit or "", f"{at.timestamp():.6f}"],
        )

    async def known_people(self, places: tuple[Place, ...], until: datetime) -> set[str]:
        """The people seen in those places (an organisation, or one unit of it) by ``until``."""
        keys = [
            self.key("people", "unit", p.organisation, p.unit) if p.unit else self.key("people", "org", p.organisation)
            for p in places
        ]
        found = await asyncio.gather(*(self.redis.zrangebyscore(k, "-inf", until.timestamp()) for k in keys))
        return set().union(*found) if found else set()

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
            self.key("person", person, "where"),
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

    async def listening(self, people: list[str], ttl_s: int = LISTENING_S) -> None:
        """A process has live streams of ``people`` open: their new items are announced (for ``ttl_s``)."""
        await asyncio.gather(*(self.redis.set(self.key("live-on", person), 1, ex=ttl_s) for person in people))

    async def deliver_in_app(self, item: FeedItem) -> bool:
        """Push the item to the recipient's feed once; False when it had been delivered before."""
        keys = [
            self.key("delivered", item.notification_id),
            self.key("feed", item.recipient),
            self.live_channel(item.recipient),
            self.key("live-on", item.recipient),
        ]
        kept = _fields(item)
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
        value = json.dumps({**_fields(item), "language": language})
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


_FEED_ITEM_FIELDS = tuple(f.name for f in fields(FeedItem))


def _fields(item: FeedItem) -> dict:
    """The item's fields (what ``asdict`` gives, without its deep copy: they are all strings)."""
    return {name: getattr(item, name) for name in _FEED_ITEM_FIELDS}


def _shown(item: dict) -> dict:
    """A feed item as the person sees it: without what it keeps about whose words it quotes."""
    return {name: value for name, value in item.items() if name not in FeedItem.PRIVATE}
