"""Event ingestion: tracking hits and ESP events become Events, rollups and consequences.

One code path for both sources, in bulk: a flush of 5,000 hits costs a handful of queries
(the deliveries, the existing activity, the new events, one upsert per rollup table), never
one query per hit. Every call runs in one transaction under a single advisory lock, so the
rollups are read, added to and written back without two writers interleaving; each Event's
unique ``uid`` makes a replayed hit or ESP event count once.
"""

import hashlib
import ipaddress
import json
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any, cast

from django.conf import settings
from django.db import connection, models, transaction
from django.db.models import Count
from django.db.models.expressions import RawSQL
from django.utils import timezone
from psycopg.types.json import Jsonb

from campaigns.models import Campaign, Delivery
from subscribers.models import email_hash
from webhooks import emit as webhooks_emit

from . import classification as rules
from .feedback import feedback_apply
from .models import (
    CampaignBreakdown,
    CampaignSeries,
    CampaignStats,
    CampaignTracking,
    DeliveryActivity,
    DomainDaily,
    Event,
    Link,
    LinkStats,
    SubscriberEngagement,
)
from .reputation import reputation_evaluate

log = logging.getLogger(__name__)

LOCK_ID = 6_060_606  # pg_advisory_xact_lock key of analytics ingestion
K = Event.Kind
ENGAGEMENT = {K.OPENED, K.CLICKED}


@dataclass
class Fact:
    uid: str
    kind: str
    occurred_at: datetime
    delivery_id: int | None = None
    message_id: str = ""
    link_id: int | None = None
    ip: str | None = None
    user_agent: str = ""
    method: str = ""
    prefetch: bool = False
    esp: str = ""
    url: str = ""
    bounce_type: str = ""
    reason: str = ""
    recipient: str = ""
    payload: dict | None = None
    # The recipient's own action (the preference center, the unsubscribe link): its effect on
    # the audience is already done, so ingestion records and counts it, and the feedback loop
    # must not act on it again (a pause or a topic change is no unsubscribe from everything).
    already_applied: bool = False
    # A replay of this fact carries the same ``occurred_at`` (the time minted with a tracking
    # hit's uid, an ESP's or a report's own timestamp), so the events' (uid, occurred_at) key
    # alone recognises it. Not so for a time taken when the fact is written (an SMTP answer,
    # an ESP event without a usable timestamp): its uid is first looked for in every monthly
    # partition. False unless the writer says so, which costs a lookup, never a duplicate.
    stable_time: bool = False
    # Filled in by ingestion:
    campaign_id: int | None = None
    subscriber_id: int | None = None
    email_hash: str = ""
    recipient_domain: str = ""
    sent_at: datetime | None = None
    classification: str = ""
    anonymous: bool = False
    extra: dict = field(default_factory=dict)


def ingestion_lock() -> None:
    """Take ingestion's lock for the rest of the current transaction (re-entrant).

    A writer that changes subscribers and then ingests (the preference center) takes it
    first, in the order ingestion itself goes (this lock, then subscriber rows in the feedback
    loop), so that the two can never deadlock.
    """
    _lock()


def _lock() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [LOCK_ID])


@lru_cache(maxsize=65536)
def _valid_ip(value) -> str | None:
    try:
        return str(ipaddress.ip_address(value)) if value else None
    except ValueError:
        return None


def ids_in(ids) -> RawSQL:
    """The right-hand side of ``id__in`` for thousands of ids: one array parameter, where
    Django's ``__in`` prepares each element on its own (16 µs an id, more than the rest of the
    lookup)."""
    return RawSQL("SELECT unnest(%s::bigint[])", [list(ids)])


def hits_to_facts(hits: list[dict]) -> list[Fact]:
    facts = []
    for hit in hits:
        try:
            facts.append(
                Fact(
                    uid=str(hit["u"]),
                    kind=K.CLICKED if hit["k"] == "c" else K.OPENED,
                    occurred_at=datetime.fromtimestamp(float(hit["t"]), tz=UTC),
                    delivery_id=int(hit["d"]),
                    link_id=int(hit["l"]) if hit.get("l") is not None else None,
                    ip=_valid_ip(hit.get("ip")),
                    user_agent=(hit.get("ua") or "")[:500].replace("\x00", ""),
                    method=(hit.get("m") or "GET")[:8],
                    prefetch=bool(hit.get("p")),
                    stable_time=True,  # "u" and "t" are minted together when answered
                )
            )
        except (KeyError, TypeError, ValueError):
            log.warning("dropping a malformed tracking hit: %r", hit)
    return facts


def ingest_hits(hits: list[dict]) -> int:
    """Ingest buffered tracking hits; returns how many new events were stored."""
    return ingest_facts(hits_to_facts(hits))


def esp_uid(
    esp: str, event_id: str | None, kind: str, message_id: str, recipient: str, timestamp
) -> str:
    """The same ESP event always gets the same uid (several recipients may share an id)."""
    if event_id:
        basis = f"{event_id}|{recipient}|{kind}"
    else:
        basis = f"{message_id}|{recipient}|{kind}|{timestamp}"
    return f"{esp}:" + hashlib.sha256(basis.encode()).hexdigest()[:40]


# --- resolving facts to deliveries ------------------------------------------------------------


# What a fact learns from its delivery, found by id or by the ESP's message id.
RESOLVE_FIELDS = (
    "id",
    "campaign_id",
    "subscriber_id",
    "email_hash",
    "domain",
    "sent_at",
    "message_id",
    "email",
)


def _resolve(facts: list[Fact]) -> None:
    ids = {f.delivery_id for f in facts if f.delivery_id}
    message_ids = {f.message_id.strip("<>") for f in facts if not f.delivery_id and f.message_id}
    rows: dict[int, dict[str, Any]] = {}
    if ids:
        rows.update(
            (r["id"], r)
            for r in Delivery.objects.filter(id__in=ids_in(ids)).values(*RESOLVE_FIELDS)
        )
    by_message = defaultdict(list)
    if message_ids:
        candidates = message_ids | {f"<{m}>" for m in message_ids}
        matching = Delivery.objects.filter(message_id__in=candidates).exclude(message_id="")
        for r in matching.values(*RESOLVE_FIELDS):
            rows[r["id"]] = r
            by_message[r["message_id"].strip("<>")].append(r)
    for f in facts:
        row = rows.get(f.delivery_id) if f.delivery_id else None
        if row is None and f.message_id:
            matches = by_message.get(f.message_id.strip("<>"), [])
            # One message id per delivery normally; an ESP reusing one for several recipients
            # is disambiguated by the recipient address.
            row = next(
                (m for m in matches if m["email"].lower() == f.recipient.lower()),
                matches[0] if len(matches) == 1 else None,
            )
        if row is None:
            if f.recipient and not f.email_hash:
                f.email_hash = email_hash(f.recipient.strip().lower())
            if f.delivery_id:
                f.extra["missing_delivery"] = True
                f.delivery_id = None
            continue
        f.delivery_id = row["id"]
        f.campaign_id = row["campaign_id"]
        f.subscriber_id = row["subscriber_id"]
        f.email_hash = row["email_hash"]
        f.recipient_domain = row["domain"]
        f.sent_at = row["sent_at"]
        f.recipient = f.recipient or row["email"]


def _classify(facts: list[Fact], activity: dict[int, DeliveryActivity]) -> None:
    link_counts = dict(
        Link.objects.filter(
            campaign_id__in={f.campaign_id for f in facts if f.kind == K.CLICKED and f.campaign_id}
        )
        .values("campaign_id")
        .annotate(n=Count("id"))
        .values_list("campaign_id", "n")
    )
    clicks = defaultdict(list)
    for f in facts:
        if f.kind == K.CLICKED and f.delivery_id:
            clicks[f.delivery_id].append(f)
    for f in facts:
        if f.kind not in ENGAGEMENT:
            continue
        burst = 1
        if f.kind == K.CLICKED and f.delivery_id:
            links = {
                g.link_id
                for g in clicks[f.delivery_id]
                if abs((g.occurred_at - f.occurred_at).total_seconds()) <= rules.BURST_SECONDS
            }
            previous = activity.get(f.delivery_id)
            if (
                previous
                and previous.last_click_at
                and previous.last_link_id not in links
                and abs((f.occurred_at - previous.last_click_at).total_seconds())
                <= rules.BURST_SECONDS
            ):
                links.add(previous.last_link_id)
            burst = len(links)
        since = (f.occurred_at - f.sent_at).total_seconds() if f.sent_at else None
        verdict = rules.classify(
            rules.Facts(
                kind=f.kind,
                ip=f.ip,
                user_agent=f.user_agent,
                method=f.method or "GET",
                prefetch=f.prefetch,
                seconds_since_sent=since,
                links_in_burst=burst,
                links_in_message=(
                    link_counts.get(f.campaign_id, 0) if f.campaign_id is not None else 0
                ),
            )
        )
        f.classification = verdict.classification
        f.reason = verdict.reason


# --- rollups ------------------------------------------------------------------------------------


class Counters:
    """Deltas for the rows of a rollup table, added up in memory, then added to the stored
    counters by the database in one INSERT ... ON CONFLICT DO UPDATE: nothing is read first.
    ``assign`` sets a plain column (a link's campaign) rather than adding to it."""

    def __init__(self, model, key_fields: list[str], counter_fields: list[str]):
        self.model = model
        self.key_fields = key_fields
        self.counter_fields = counter_fields
        self.rows: dict[tuple, dict] = {}
        self.assigned: dict[tuple, dict] = {}

    def add(self, key: tuple, **deltas: int) -> None:
        row = self.rows.setdefault(key, defaultdict(int))
        for name, value in deltas.items():
            row[name] += value

    def assign(self, key: tuple, **values) -> None:
        self.assigned.setdefault(key, {}).update(values)

    def save(self, **everywhere) -> None:
        """Write the deltas; ``everywhere`` assigns the same value on every row.

        A negative delta (a soft bounce that turned hard moves one count from bounced_soft to
        bounced_hard) is never part of the INSERT: PostgreSQL checks the proposed row's
        constraints before it looks for a conflict, so a -1 in VALUES breaks the counters'
        ``>= 0`` check even though the row exists and the sum would be fine. The increments
        are upserted first, then the decrements applied to the rows, now sure to exist.
        """
        if not self.rows:
            return
        decrements = {
            key: {n: -v for n, v in deltas.items() if v < 0}
            for key, deltas in self.rows.items()
            if any(v < 0 for v in deltas.values())
        }
        self._upsert(everywhere)
        if decrements:
            self._decrement(decrements)

    def _upsert(self, everywhere: dict) -> None:
        meta, quote = self.model._meta, connection.ops.quote_name
        assigned = sorted({n for v in self.assigned.values() for n in v} | set(everywhere))
        plain = [meta.get_field(n) for n in (*self.key_fields, *assigned)]
        names = [*self.key_fields, *assigned, *self.counter_fields]
        columns = [quote(meta.get_field(n).column) for n in names]
        updates = [f"{c} = t.{c} + EXCLUDED.{c}" for c in columns[len(plain) :]]
        updates += [f"{c} = EXCLUDED.{c}" for c in columns[len(self.key_fields) : len(plain)]]
        rows = []
        for key, deltas in self.rows.items():
            values = {**everywhere, **self.assigned.get(key, {})}
            fixed = [*key, *(values[n] for n in assigned)]
            rows.append(
                [f.get_db_prep_value(v, connection) for f, v in zip(plain, fixed, strict=True)]
                + [max(deltas.get(n, 0), 0) for n in self.counter_fields]
            )
        row_sql = "(" + ", ".join(["%s"] * len(columns)) + ")"
        keys = ", ".join(columns[: len(self.key_fields)])
        with connection.cursor() as cursor:
            for start in range(0, len(rows), 500):
                chunk = rows[start : start + 500]
                cursor.execute(
                    f"INSERT INTO {quote(meta.db_table)} AS t ({', '.join(columns)}) "  # noqa: S608
                    f"VALUES {', '.join([row_sql] * len(chunk))} "
                    f"ON CONFLICT ({keys}) DO UPDATE SET {', '.join(updates)}",
                    [v for row in chunk for v in row],
                )

    def _decrement(self, decrements: dict[tuple, dict]) -> None:
        """Subtract, never below zero: a counter that is already wrong (an older bug, a
        manual edit) must not make the ESP's event fail, and be retried, for ever."""
        meta, quote = self.model._meta, connection.ops.quote_name
        keys = [meta.get_field(n) for n in self.key_fields]
        names = sorted({n for d in decrements.values() for n in d})
        columns = [quote(meta.get_field(n).column) for n in names]
        key_columns = [quote(f.column) for f in keys]
        alias = [f"k{i}" for i in range(len(keys))] + [f"c{i}" for i in range(len(names))]
        sets = ", ".join(f"{c} = GREATEST(t.{c} - v.c{i}, 0)" for i, c in enumerate(columns))
        match = " AND ".join(f"t.{c} = v.k{i}" for i, c in enumerate(key_columns))
        rows = [
            [f.get_db_prep_value(v, connection) for f, v in zip(keys, key, strict=True)]
            + [d.get(n, 0) for n in names]
            for key, d in decrements.items()
        ]
        row_sql = "(" + ", ".join(["%s"] * len(alias)) + ")"
        with connection.cursor() as cursor:
            for start in range(0, len(rows), 500):
                chunk = rows[start : start + 500]
                cursor.execute(
                    f"UPDATE {quote(meta.db_table)} AS t SET {sets} "  # noqa: S608
                    f"FROM (VALUES {', '.join([row_sql] * len(chunk))}) "
                    f"AS v({', '.join(alias)}) WHERE {match}",
                    [v for row in chunk for v in row],
                )


def _sending_domains(campaign_ids: set[int]) -> dict[int, str]:
    out = {}
    for c in Campaign.objects.filter(id__in=campaign_ids).values(
        "id", "connection__sending_domain", "from_email"
    ):
        domain = c["connection__sending_domain"] or (
            (c["from_email"] or settings.DEFAULT_FROM_EMAIL).rpartition("@")[2].strip("> ")
        )
        out[c["id"]] = domain.lower()
    return out


def ingest_facts(facts: list[Fact]) -> int:
    if not facts:
        return 0
    consequences = None
    with transaction.atomic():
        _lock()
        new = _store(facts)
        if new:
            consequences = _apply(new)
            # Opens, clicks, bounces, complaints to the endpoints that want them (nothing,
            # not even a query, when none does), committed with the events themselves.
            webhooks_emit.events_ingested(new)
    if consequences:
        reputation_evaluate(domains=consequences["domains"], campaign_ids=consequences["campaigns"])
    return consequences["stored"] if consequences else 0


def _store(facts: list[Fact]) -> list[Fact]:
    # Replays (the buffer re-flushed, the ESP retried) are dropped: within the batch here, and
    # against the table by INSERT ... ON CONFLICT DO NOTHING (or, for a fact whose time is not
    # its own, by looking its uid up first).
    unique, uids = [], set()
    for f in facts:
        if f.uid not in uids:
            unique.append(f)
            uids.add(f.uid)
    unique = _not_stored(unique)
    if not unique:
        return []
    _resolve(unique)
    modes = dict(
        CampaignTracking.objects.filter(
            campaign_id__in={f.campaign_id for f in unique if f.campaign_id}
        ).values_list("campaign_id", "mode")
    )
    kept = []
    for f in unique:
        mode = (
            modes.get(f.campaign_id, CampaignTracking.Mode.INDIVIDUAL)
            if f.campaign_id is not None
            else CampaignTracking.Mode.INDIVIDUAL
        )
        if f.kind in ENGAGEMENT and f.esp == "":
            if mode == CampaignTracking.Mode.OFF:
                continue
            f.anonymous = mode == CampaignTracking.Mode.ANONYMOUS
        kept.append(f)
    activity = _activity_of({f.delivery_id for f in kept if f.delivery_id and not f.anonymous})
    _classify(kept, activity)
    received_at = timezone.now()
    rows = [_event_row(f, received_at) for f in kept]
    inserted = _copy_events(rows)
    kept = [f for f in kept if f.uid in inserted]
    for f in kept:
        f.extra["activity"] = activity
    return kept


def _not_stored(facts: list[Fact]) -> list[Fact]:
    """The facts less those whose time is not their own and whose uid is stored already, at
    whatever time (ON CONFLICT only sees a uid at the same ``occurred_at``). Race-free: every
    insert of events happens under the ingestion lock, held here."""
    uids = [f.uid for f in facts if not f.stable_time]
    if not uids:
        return facts
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT uid FROM {Event._meta.db_table} WHERE uid = ANY(%s)",  # noqa: S608
            [uids],
        )
        stored = {uid for (uid,) in cursor.fetchall()}
    return [f for f in facts if f.uid not in stored]


def _activity_of(delivery_ids: set[int]) -> dict[int, DeliveryActivity]:
    """The deliveries' activity rows. Their timestamps come as ISO text and are parsed by
    datetime.fromisoformat: Django's timestamp loader is Python, and its 6 µs a value over
    eight columns was the largest single cost of a flush after the SQL."""
    if not delivery_ids:
        return {}
    fields = DeliveryActivity._meta.concrete_fields
    stamps = [i for i, f in enumerate(fields) if isinstance(f, models.DateTimeField)]
    jsons = [i for i, f in enumerate(fields) if isinstance(f, models.JSONField)]
    attnames = [f.attname for f in fields]
    # A concrete field always has a column (the stubs allow None for the non-concrete ones).
    names = [cast(str, f.column) for f in fields]
    columns = ", ".join(
        f"to_json({c}) #>> '{{}}'" if i in stamps else c for i, c in enumerate(names)
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {columns} FROM {DeliveryActivity._meta.db_table} "  # noqa: S608
            "WHERE delivery_id = ANY(%s)",
            [list(delivery_ids)],
        )
        rows = cursor.fetchall()
    parse = datetime.fromisoformat
    activity = {}
    for row in rows:
        values = list(row)
        for i in stamps:
            if values[i] is not None:
                values[i] = parse(values[i])
        for i in jsons:
            if isinstance(values[i], str):
                values[i] = json.loads(values[i])
        a = DeliveryActivity.from_db(connection.alias, attnames, values)
        activity[a.delivery_id] = a
    return activity


EVENT_COLUMNS = [
    "uid",
    "kind",
    "occurred_at",
    "received_at",
    "delivery_id",
    "campaign_id",
    "subscriber_id",
    "link_id",
    "email_hash",
    "classification",
    "reason",
    "bounce_type",
    "ip",
    "user_agent",
    "method",
    "prefetch",
    "esp",
    "message_id",
    "url",
    "payload",
]


def _event_row(f: Fact, received_at: datetime) -> tuple:
    # Anonymous tracking keeps the campaign and the link, not who it was.
    return (
        f.uid,
        f.kind,
        f.occurred_at,
        received_at,
        None if f.anonymous else f.delivery_id,
        f.campaign_id,
        None if f.anonymous else f.subscriber_id,
        f.link_id,
        "" if f.anonymous else f.email_hash,
        f.classification,
        f.reason[:300],
        f.bounce_type,
        None if f.anonymous else f.ip,
        f.user_agent,
        f.method,
        f.prefetch,
        f.esp,
        f.message_id[:255],
        f.url[:2000],
        f.payload,
    )


def _upsert(model, objects: list, unique: str, fields: list[str]) -> None:
    """INSERT ... ON CONFLICT DO UPDATE of many rows, through COPY into a temporary table
    (the ORM's multi-row INSERT costs more Python than the write itself)."""
    if not objects:
        return
    meta = model._meta
    all_fields = [meta.get_field(unique), *(meta.get_field(f) for f in fields)]
    columns = [f.column for f in all_fields]
    attnames = [f.attname for f in all_fields]
    names = ", ".join(columns)
    table = meta.db_table
    conflict = meta.get_field(unique).column
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns[1:])
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMP TABLE {table}_in ON COMMIT DROP AS "  # noqa: S608
            f"SELECT {names} FROM {table} WITH NO DATA"
        )
        json_fields = {f.attname for f in all_fields if isinstance(f, models.JSONField)}
        with cursor.cursor.copy(f"COPY {table}_in ({names}) FROM STDIN") as copy:
            for obj in objects:
                copy.write_row(
                    [
                        Jsonb(getattr(obj, n)) if n in json_fields else getattr(obj, n)
                        for n in attnames
                    ]
                )
        cursor.execute(
            f"INSERT INTO {table} ({names}) SELECT {names} FROM {table}_in "  # noqa: S608
            f"ON CONFLICT ({conflict}) DO UPDATE SET {updates}"
        )
        cursor.execute(f"DROP TABLE {table}_in")


def _copy_events(rows: list[tuple]) -> set[str]:
    """COPY the rows into a temporary table, then insert the new ones: a fraction of the cost
    of a multi-row INSERT built by the ORM, and the uids actually inserted come back."""
    columns = ", ".join(EVENT_COLUMNS)
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMP TABLE analytics_event_in ON COMMIT DROP AS "  # noqa: S608
            f"SELECT {columns} FROM analytics_event WITH NO DATA"
        )
        payload = EVENT_COLUMNS.index("payload")
        with cursor.cursor.copy(f"COPY analytics_event_in ({columns}) FROM STDIN") as copy:
            for row in rows:
                if row[payload] is not None:
                    row = (*row[:payload], json.dumps(row[payload]), *row[payload + 1 :])
                copy.write_row(row)
        cursor.execute(
            f"INSERT INTO analytics_event ({columns}) SELECT {columns} "  # noqa: S608
            "FROM analytics_event_in ON CONFLICT (uid, occurred_at) DO NOTHING RETURNING uid"
        )
        inserted = {uid for (uid,) in cursor.fetchall()}
        cursor.execute("DROP TABLE analytics_event_in")
    return inserted


@dataclass
class Rollups:
    """A batch's deltas for every rollup table, and the subscribers' engagement, written
    together at the end of the batch."""

    stats: Counters = field(
        default_factory=lambda: Counters(
            CampaignStats,
            ["campaign_id"],
            [
                f.name
                for f in CampaignStats._meta.fields
                if f.name not in ("campaign", "updated_at")
            ],
        )
    )
    series: Counters = field(
        default_factory=lambda: Counters(
            CampaignSeries,
            ["campaign_id", "bucket"],
            ["opens", "opens_human", "clicks", "clicks_human"],
        )
    )
    links: Counters = field(
        default_factory=lambda: Counters(
            LinkStats, ["link_id"], ["clicks", "clicks_human", "unique_human_clicks"]
        )
    )
    breakdown: Counters = field(
        default_factory=lambda: Counters(
            CampaignBreakdown,
            ["campaign_id", "dimension", "key"],
            ["delivered", "bounced", "human_opens", "human_clicks"],
        )
    )
    daily: Counters = field(
        default_factory=lambda: Counters(
            DomainDaily,
            ["domain", "day"],
            [
                "delivered",
                "bounced_hard",
                "bounced_soft",
                "bounced_sender",
                "complained",
                "opens_human",
                "clicks_human",
                "unsubscribed",
            ],
        )
    )
    engagement: dict[int, dict] = field(default_factory=dict)

    def engage(self, subscriber_id: int, *, count: str, last: str, at: datetime) -> None:
        """Count one engagement of a subscriber (``count`` may be empty) and keep the latest
        time of its kind."""
        row = self.engagement.setdefault(subscriber_id, defaultdict(int))
        if count:
            row[count] += 1
        row[last] = max(row.get(last) or at, at)

    def save(self) -> None:
        self.stats.save(updated_at=timezone.now())
        for counters in (self.series, self.breakdown, self.daily, self.links):
            counters.save()
        _save_engagement(self.engagement)


@dataclass
class RollupKeys:
    """The keys a fact counts under: its campaign, the campaign's sending domain, the day."""

    campaign_id: int
    domain: str
    day: date


def _apply(facts: list[Fact]) -> dict:
    activity: dict[int, DeliveryActivity] = facts[0].extra["activity"]
    domains = _sending_domains({f.campaign_id for f in facts if f.campaign_id})
    rollups = Rollups()
    touched_activity: set[int] = set()
    reputation_domains: set[str] = set()
    reputation_campaigns: set[int] = set()

    for fact in sorted(facts, key=lambda f: f.occurred_at):
        cid = fact.campaign_id
        if cid is None:
            continue  # unknown message id: the Event is the record
        if fact.kind == K.RESUBSCRIBED:
            continue  # coming back is for the timeline: an unsubscribe is never un-counted
        keys = RollupKeys(cid, domains.get(cid, ""), fact.occurred_at.date())
        row = None
        if fact.delivery_id and not fact.anonymous:
            row = activity.get(fact.delivery_id)
            if row is None:
                row = activity[fact.delivery_id] = DeliveryActivity(
                    delivery_id=fact.delivery_id, campaign_id=cid, subscriber_id=fact.subscriber_id
                )
            touched_activity.add(fact.delivery_id)
        if fact.kind == K.OPENED:
            _apply_open(fact, row, rollups, keys)
        elif fact.kind == K.CLICKED:
            _apply_click(fact, row, rollups, keys)
        elif row is not None:
            _apply_delivery_event(fact, row, rollups, keys)
            reputation_domains.add(keys.domain)
            reputation_campaigns.add(cid)
            if fact.kind == K.DELIVERED and fact.subscriber_id:
                rollups.engage(fact.subscriber_id, count="", last="last_sent", at=fact.occurred_at)

    if touched_activity:
        fields = [f.name for f in DeliveryActivity._meta.fields if f.name not in ("delivery",)]
        _upsert(DeliveryActivity, [activity[d] for d in touched_activity], "delivery", fields)
    rollups.save()
    feedback_apply(facts=[f for f in facts if f.kind not in ENGAGEMENT and not f.already_applied])
    return {
        "domains": reputation_domains,
        "campaigns": reputation_campaigns,
        "stored": len(facts),
    }


def _hour(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


def _apply_open(
    fact: Fact, row: DeliveryActivity | None, rollups: Rollups, keys: RollupKeys
) -> None:
    cid, human = keys.campaign_id, fact.classification == rules.HUMAN
    rollups.series.add((cid, _hour(fact.occurred_at)), opens=1, opens_human=int(human))
    rollups.stats.add((cid,), opens=1, **{f"opens_{fact.classification}": 1})
    if human:
        rollups.daily.add((keys.domain, keys.day), opens_human=1)
    if row is not None:
        row.opens += 1
        if row.first_open_at is None:
            row.first_open_at = fact.occurred_at
            rollups.stats.add((cid,), unique_opens=1)
        if human:
            row.human_opens += 1
            if row.first_human_open_at is None:
                row.first_human_open_at = fact.occurred_at
                rollups.stats.add((cid,), unique_human_opens=1)
                breakdown = rollups.breakdown
                breakdown.add((cid, "client", rules.mail_client(fact.user_agent)), human_opens=1)
                breakdown.add((cid, "device", rules.device(fact.user_agent)), human_opens=1)
                breakdown.add((cid, "domain", fact.recipient_domain), human_opens=1)
    if human and fact.subscriber_id and not fact.anonymous:
        rollups.engage(fact.subscriber_id, count="opens", last="last_open", at=fact.occurred_at)


def _apply_click(
    fact: Fact, row: DeliveryActivity | None, rollups: Rollups, keys: RollupKeys
) -> None:
    cid, human = keys.campaign_id, fact.classification == rules.HUMAN
    rollups.series.add((cid, _hour(fact.occurred_at)), clicks=1, clicks_human=int(human))
    rollups.stats.add(
        (cid,),
        clicks=1,
        clicks_human=int(human),
        clicks_scanner=int(fact.classification == rules.SCANNER),
    )
    if fact.link_id:
        rollups.links.assign((fact.link_id,), campaign_id=cid)
        first_on_link = False
        if human and row is not None and fact.link_id not in row.human_link_ids:
            row.human_link_ids.append(fact.link_id)
            first_on_link = True
        rollups.links.add(
            (fact.link_id,),
            clicks=1,
            clicks_human=int(human),
            unique_human_clicks=int(first_on_link),
        )
    if human:
        rollups.daily.add((keys.domain, keys.day), clicks_human=1)
    if row is not None:
        row.clicks += 1
        row.last_click_at = fact.occurred_at
        row.last_link_id = fact.link_id
        if row.first_click_at is None:
            row.first_click_at = fact.occurred_at
            rollups.stats.add((cid,), unique_clicks=1)
        if human:
            row.human_clicks += 1
            if row.first_human_click_at is None:
                row.first_human_click_at = fact.occurred_at
                rollups.stats.add((cid,), unique_human_clicks=1)
                rollups.breakdown.add((cid, "domain", fact.recipient_domain), human_clicks=1)
    if human and fact.subscriber_id and not fact.anonymous:
        rollups.engage(fact.subscriber_id, count="clicks", last="last_click", at=fact.occurred_at)


BOUNCE_COUNTERS: dict[str, str] = {
    Event.BounceType.HARD: "bounced_hard",
    Event.BounceType.SOFT: "bounced_soft",
    Event.BounceType.SENDER: "bounced_sender",
}


def _apply_delivery_event(
    fact: Fact, row: DeliveryActivity, rollups: Rollups, keys: RollupKeys
) -> None:
    cid, stats = keys.campaign_id, rollups.stats
    day_key, domain_key = (keys.domain, keys.day), (cid, "domain", fact.recipient_domain)
    if fact.kind == K.DELIVERED:
        if row.delivered_at is None:
            row.delivered_at = fact.occurred_at
            stats.add((cid,), delivered=1)
            rollups.daily.add(day_key, delivered=1)
            rollups.breakdown.add(domain_key, delivered=1)
        if not row.esp_status:
            row.esp_status = "delivered"
    elif fact.kind == K.DEFERRED:
        row.deferred_count += 1
        stats.add((cid,), deferred=1)
        row.esp_status = row.esp_status or "deferred"
    elif fact.kind == K.BOUNCED:
        kind = fact.bounce_type or Event.BounceType.HARD
        counter = BOUNCE_COUNTERS.get(kind, "bounced_hard")
        if row.bounced_at is None:
            row.bounced_at = fact.occurred_at
            row.bounce_type = kind
            stats.add((cid,), **{counter: 1})
            rollups.daily.add(day_key, **{counter: 1})
            rollups.breakdown.add(domain_key, bounced=1)
        elif kind != Event.BounceType.SOFT and row.bounce_type == Event.BounceType.SOFT:
            # A soft bounce that turned final (hard, or a block of the sender) counts once,
            # as what it turned into. The day's row counts events: the soft one may be
            # another day's.
            row.bounce_type = kind
            stats.add((cid,), bounced_soft=-1, **{counter: 1})
            rollups.daily.add(day_key, **{counter: 1})
        row.esp_status = "bounced"
    elif fact.kind == K.REJECTED:
        if row.esp_status != "rejected":
            stats.add((cid,), rejected=1)
        row.esp_status = "rejected"
    elif fact.kind == K.COMPLAINED:
        if row.complained_at is None:
            row.complained_at = fact.occurred_at
            stats.add((cid,), complained=1)
            rollups.daily.add(day_key, complained=1)
        row.esp_status = "complained"
    elif fact.kind == K.UNSUBSCRIBED and row.unsubscribed_at is None:
        row.unsubscribed_at = fact.occurred_at
        stats.add((cid,), unsubscribed=1)
        rollups.daily.add(day_key, unsubscribed=1)


def _save_engagement(engagement: dict[int, dict]) -> None:
    """Add a batch's human opens and clicks to each subscriber's engagement (subscribers
    erased meanwhile are skipped) and rescore them."""
    if not engagement:
        return
    ids = list(engagement)
    deltas = [engagement[i] for i in ids]
    merged = {
        "click_at": "GREATEST(e.last_human_click_at, EXCLUDED.last_human_click_at)",
        "open_at": "GREATEST(e.last_human_open_at, EXCLUDED.last_human_open_at)",
        "clicks": "(e.human_clicks + EXCLUDED.human_clicks)",
        "opens": "(e.human_opens + EXCLUDED.human_opens)",
    }
    new_score = engagement_score_sql(
        click_at="v.last_click", open_at="v.last_open", clicks="v.clicks", opens="v.opens"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO analytics_subscriberengagement AS e (subscriber_id, human_opens,
                human_clicks, last_human_open_at, last_human_click_at, last_sent_at, score)
            SELECT v.id, v.opens, v.clicks, v.last_open, v.last_click, v.last_sent, {new_score}
            FROM unnest(%s::bigint[], %s::int[], %s::int[], %s::timestamptz[],
                        %s::timestamptz[], %s::timestamptz[])
                 AS v(id, opens, clicks, last_open, last_click, last_sent)
            JOIN subscribers_subscriber s ON s.id = v.id
            ON CONFLICT (subscriber_id) DO UPDATE SET
                human_opens = {merged["opens"]},
                human_clicks = {merged["clicks"]},
                last_human_open_at = {merged["open_at"]},
                last_human_click_at = {merged["click_at"]},
                last_sent_at = GREATEST(e.last_sent_at, EXCLUDED.last_sent_at),
                score = {engagement_score_sql(**merged)}
            """,  # noqa: S608 (expressions of ours, values as parameters)
            [
                ids,
                [d.get("opens", 0) for d in deltas],
                [d.get("clicks", 0) for d in deltas],
                [d.get("last_open") for d in deltas],
                [d.get("last_click") for d in deltas],
                [d.get("last_sent") for d in deltas],
            ],
        )


def engagement_score_sql(
    *,
    click_at: str = "last_human_click_at",
    open_at: str = "last_human_open_at",
    clicks: str = "human_clicks",
    opens: str = "human_opens",
) -> str:
    """engagement_score as a SQL expression over the given columns or expressions, for
    set-based scoring on PostgreSQL (the same weights and decay)."""

    def recency(at: str) -> str:
        return (
            f"(CASE WHEN {at} IS NULL THEN 0 ELSE power(0.5::float8, "
            f"GREATEST(EXTRACT(EPOCH FROM (now() - {at}))::float8, 0) / 86400 / 30) END)"
        )

    return (
        f"LEAST(100, ROUND(45 * {recency(click_at)} + 35 * {recency(open_at)}"
        f" + 10 * LEAST({clicks}, 10) / 10.0 + 10 * LEAST({opens}, 20) / 20.0))"
    )


def engagement_score(e: SubscriberEngagement, *, now: datetime) -> int:
    """0-100: recent human clicks weigh most, then recent human opens, then volume.

    Recency halves every 30 days; the counts saturate so a long-time reader is not
    outscored forever by one burst of activity.
    """

    def recency(at):
        if at is None:
            return 0.0
        days = max((now - at) / timedelta(days=1), 0)
        return 0.5 ** (days / 30)

    score = (
        45 * recency(e.last_human_click_at)
        + 35 * recency(e.last_human_open_at)
        + 10 * min(e.human_clicks, 10) / 10
        + 10 * min(e.human_opens, 20) / 20
    )
    return round(min(score, 100))
