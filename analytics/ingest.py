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
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count
from django.utils import timezone

from campaigns.models import Campaign, Delivery
from subscribers.models import email_hash

from . import classification as rules
from .models import (
    CampaignBreakdown,
    CampaignSeries,
    CampaignStats,
    CampaignTracking,
    DeliveryActivity,
    DomainDaily,
    Event,
    LinkStats,
    SubscriberEngagement,
)

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
    # Filled in by ingestion:
    campaign_id: int | None = None
    subscriber_id: int | None = None
    email_hash: str = ""
    recipient_domain: str = ""
    sent_at: datetime | None = None
    classification: str = ""
    anonymous: bool = False
    extra: dict = field(default_factory=dict)


def _lock() -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [LOCK_ID])
    # SQLite: the settings open every transaction IMMEDIATE, which already serializes writers.


def _valid_ip(value) -> str | None:
    try:
        return str(ipaddress.ip_address(value)) if value else None
    except ValueError:
        return None


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


def _resolve(facts: list[Fact]) -> None:
    ids = {f.delivery_id for f in facts if f.delivery_id}
    message_ids = {f.message_id.strip("<>") for f in facts if not f.delivery_id and f.message_id}
    rows = {}
    if ids:
        rows.update(
            (r["id"], r)
            for r in Delivery.objects.filter(id__in=ids).values(
                "id",
                "campaign_id",
                "subscriber_id",
                "email_hash",
                "domain",
                "sent_at",
                "message_id",
                "email",
            )
        )
    by_message = defaultdict(list)
    if message_ids:
        candidates = message_ids | {f"<{m}>" for m in message_ids}
        for r in Delivery.objects.filter(message_id__in=candidates).values(
            "id",
            "campaign_id",
            "subscriber_id",
            "email_hash",
            "domain",
            "sent_at",
            "message_id",
            "email",
        ):
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
    from .models import Link

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
                links_in_message=link_counts.get(f.campaign_id, 0),
            )
        )
        f.classification = verdict.classification
        f.reason = verdict.reason


# --- rollups ------------------------------------------------------------------------------------


class Counters:
    """Rows of a rollup table loaded once, added to in memory, written back in one upsert."""

    def __init__(self, model, key_fields: list[str], counter_fields: list[str]):
        self.model = model
        self.key_fields = key_fields
        self.counter_fields = counter_fields
        self.rows: dict[tuple, dict] = {}

    def add(self, key: tuple, **deltas: int) -> None:
        row = self.rows.setdefault(key, defaultdict(int))
        for name, value in deltas.items():
            row[name] += value

    def save(self) -> None:
        if not self.rows:
            return
        # Load the current values of the touched keys (a superset filter, narrowed here).
        filters = {
            f"{name}__in": {key[i] for key in self.rows} for i, name in enumerate(self.key_fields)
        }
        current = {
            tuple(r[n] for n in self.key_fields): r
            for r in self.model.objects.filter(**filters).values(
                *self.key_fields, *self.counter_fields
            )
        }
        objects = []
        for key, deltas in self.rows.items():
            base = current.get(key, {})
            values = {n: (base.get(n) or 0) + deltas.get(n, 0) for n in self.counter_fields}
            values.update(zip(self.key_fields, key, strict=True))
            objects.append(self.model(**values))
        self.model.objects.bulk_create(
            objects,
            update_conflicts=True,
            unique_fields=[self._unique_name(n) for n in self.key_fields],
            update_fields=self.counter_fields,
        )

    def _unique_name(self, name: str) -> str:
        return name.removesuffix("_id") if name.endswith("_id") and self._is_fk(name) else name

    def _is_fk(self, name: str) -> bool:
        try:
            return self.model._meta.get_field(name.removesuffix("_id")).is_relation
        except Exception:
            return False


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
    if consequences:
        from .reputation import reputation_evaluate

        reputation_evaluate(domains=consequences["domains"], campaign_ids=consequences["campaigns"])
    return consequences["stored"] if consequences else 0


def _store(facts: list[Fact]) -> list[Fact]:
    postgres = connection.vendor == "postgresql"
    # Replays (the buffer re-flushed, the ESP retried) are dropped: within the batch here, and
    # against the table by INSERT ... ON CONFLICT DO NOTHING on PostgreSQL, or by a lookup.
    seen = (
        set()
        if postgres
        else set(Event.objects.filter(uid__in=[f.uid for f in facts]).values_list("uid", flat=True))
    )
    unique, uids = [], set()
    for f in facts:
        if f.uid not in seen and f.uid not in uids:
            unique.append(f)
            uids.add(f.uid)
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
        mode = modes.get(f.campaign_id, CampaignTracking.Mode.INDIVIDUAL)
        if f.kind in ENGAGEMENT and f.esp == "":
            if mode == CampaignTracking.Mode.OFF:
                continue
            f.anonymous = mode == CampaignTracking.Mode.ANONYMOUS
        kept.append(f)
    activity = {
        a.delivery_id: a
        for a in DeliveryActivity.objects.filter(
            delivery_id__in={f.delivery_id for f in kept if f.delivery_id and not f.anonymous}
        )
    }
    _classify(kept, activity)
    rows = [_event_row(f) for f in kept]
    if postgres:
        inserted = _copy_events(rows)
        kept = [f for f in kept if f.uid in inserted]
    else:
        Event.objects.bulk_create(
            [Event(**dict(zip(EVENT_COLUMNS, r, strict=True))) for r in rows], batch_size=2000
        )
    for f in kept:
        f.extra["activity"] = activity
    return kept


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


def _event_row(f: Fact) -> tuple:
    # Anonymous tracking keeps the campaign and the link, not who it was.
    return (
        f.uid,
        f.kind,
        f.occurred_at,
        timezone.now(),
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
    """INSERT ... ON CONFLICT DO UPDATE of many rows; on PostgreSQL through COPY into a
    temporary table (the ORM's multi-row INSERT costs more Python than the write itself)."""
    if not objects:
        return
    if connection.vendor != "postgresql":
        model.objects.bulk_create(
            objects,
            update_conflicts=True,
            unique_fields=[unique],
            update_fields=fields,
            batch_size=2000,
        )
        return
    meta = model._meta
    all_fields = [meta.get_field(unique), *(meta.get_field(f) for f in fields)]
    columns = [f.column for f in all_fields]
    names = ", ".join(columns)
    table = meta.db_table
    conflict = meta.get_field(unique).column
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns[1:])
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMP TABLE {table}_in ON COMMIT DROP AS "  # noqa: S608
            f"SELECT {names} FROM {table} WITH NO DATA"
        )
        with cursor.cursor.copy(f"COPY {table}_in ({names}) FROM STDIN") as copy:
            for obj in objects:
                copy.write_row([getattr(obj, f.attname) for f in all_fields])
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
            "FROM analytics_event_in ON CONFLICT (uid) DO NOTHING RETURNING uid"
        )
        inserted = {uid for (uid,) in cursor.fetchall()}
        cursor.execute("DROP TABLE analytics_event_in")
    return inserted


def _apply(facts: list[Fact]) -> dict:
    from .feedback import feedback_apply

    activity: dict[int, DeliveryActivity] = facts[0].extra["activity"]
    domains = _sending_domains({f.campaign_id for f in facts if f.campaign_id})
    stats = Counters(
        CampaignStats,
        ["campaign_id"],
        [f.name for f in CampaignStats._meta.fields if f.name not in ("campaign", "updated_at")],
    )
    series = Counters(
        CampaignSeries,
        ["campaign_id", "bucket"],
        ["opens", "opens_human", "clicks", "clicks_human"],
    )
    links = Counters(LinkStats, ["link_id"], ["clicks", "clicks_human", "unique_human_clicks"])
    link_campaign: dict[int, int] = {}
    breakdown = Counters(
        CampaignBreakdown,
        ["campaign_id", "dimension", "key"],
        ["delivered", "bounced", "human_opens", "human_clicks"],
    )
    daily = Counters(
        DomainDaily,
        ["domain", "day"],
        [
            "delivered",
            "bounced_hard",
            "bounced_soft",
            "complained",
            "opens_human",
            "clicks_human",
            "unsubscribed",
        ],
    )
    engagement: dict[int, dict] = {}
    touched_activity: set[int] = set()
    reputation_domains: set[str] = set()
    reputation_campaigns: set[int] = set()
    human_clicked_pairs = _human_clicked_pairs(facts)

    for f in sorted(facts, key=lambda f: f.occurred_at):
        cid = f.campaign_id
        if cid is None:
            continue  # unknown message id: the Event is the record
        domain = domains.get(cid, "")
        day = f.occurred_at.date()
        human = f.classification == rules.HUMAN
        a = None
        if f.delivery_id and not f.anonymous:
            a = activity.get(f.delivery_id)
            if a is None:
                a = activity[f.delivery_id] = DeliveryActivity(
                    delivery_id=f.delivery_id, campaign_id=cid, subscriber_id=f.subscriber_id
                )
            touched_activity.add(f.delivery_id)
        if f.kind == K.OPENED:
            bucket = f.occurred_at.replace(minute=0, second=0, microsecond=0)
            series.add((cid, bucket), opens=1, opens_human=int(human))
            stats.add((cid,), opens=1, **{f"opens_{f.classification}": 1})
            if human:
                daily.add((domain, day), opens_human=1)
            if a is not None:
                a.opens += 1
                if a.first_open_at is None:
                    a.first_open_at = f.occurred_at
                    stats.add((cid,), unique_opens=1)
                if human:
                    a.human_opens += 1
                    if a.first_human_open_at is None:
                        a.first_human_open_at = f.occurred_at
                        stats.add((cid,), unique_human_opens=1)
                        breakdown.add(
                            (cid, "client", rules.mail_client(f.user_agent)), human_opens=1
                        )
                        breakdown.add((cid, "device", rules.device(f.user_agent)), human_opens=1)
                        breakdown.add((cid, "domain", f.recipient_domain), human_opens=1)
            if human and f.subscriber_id and not f.anonymous:
                e = engagement.setdefault(f.subscriber_id, defaultdict(int))
                e["opens"] += 1
                e["last_open"] = max(e.get("last_open") or f.occurred_at, f.occurred_at)
        elif f.kind == K.CLICKED:
            bucket = f.occurred_at.replace(minute=0, second=0, microsecond=0)
            series.add((cid, bucket), clicks=1, clicks_human=int(human))
            stats.add(
                (cid,),
                clicks=1,
                clicks_human=int(human),
                clicks_scanner=int(f.classification == rules.SCANNER),
            )
            if f.link_id:
                link_campaign[f.link_id] = cid
                first_on_link = human and (f.delivery_id, f.link_id) not in human_clicked_pairs
                if first_on_link and not f.anonymous:
                    human_clicked_pairs.add((f.delivery_id, f.link_id))
                links.add(
                    (f.link_id,),
                    clicks=1,
                    clicks_human=int(human),
                    unique_human_clicks=int(first_on_link and not f.anonymous),
                )
            if human:
                daily.add((domain, day), clicks_human=1)
            if a is not None:
                a.clicks += 1
                a.last_click_at = f.occurred_at
                a.last_link_id = f.link_id
                if a.first_click_at is None:
                    a.first_click_at = f.occurred_at
                    stats.add((cid,), unique_clicks=1)
                if human:
                    a.human_clicks += 1
                    if a.first_human_click_at is None:
                        a.first_human_click_at = f.occurred_at
                        stats.add((cid,), unique_human_clicks=1)
                        breakdown.add((cid, "domain", f.recipient_domain), human_clicks=1)
            if human and f.subscriber_id and not f.anonymous:
                e = engagement.setdefault(f.subscriber_id, defaultdict(int))
                e["clicks"] += 1
                e["last_click"] = max(e.get("last_click") or f.occurred_at, f.occurred_at)
        elif a is not None:
            _apply_delivery_event(f, a, stats, daily, breakdown, domain, day)
            reputation_domains.add(domain)
            reputation_campaigns.add(cid)
            if f.kind == K.DELIVERED and f.subscriber_id:
                e = engagement.setdefault(f.subscriber_id, defaultdict(int))
                e["last_sent"] = max(e.get("last_sent") or f.occurred_at, f.occurred_at)

    if touched_activity:
        fields = [f.name for f in DeliveryActivity._meta.fields if f.name not in ("delivery",)]
        _upsert(DeliveryActivity, [activity[d] for d in touched_activity], "delivery", fields)
    for counters in (stats, series, breakdown, daily):
        counters.save()
    if links.rows:
        _save_links(links, link_campaign)
    _save_engagement(engagement)
    feedback_apply(facts=[f for f in facts if f.kind not in ENGAGEMENT])
    return {
        "domains": reputation_domains,
        "campaigns": reputation_campaigns,
        "stored": len(facts),
    }


def _save_links(links: Counters, link_campaign: dict[int, int]) -> None:
    current = {
        r["link_id"]: r
        for r in LinkStats.objects.filter(link_id__in=link_campaign).values(
            "link_id", "clicks", "clicks_human", "unique_human_clicks"
        )
    }
    objects = []
    for (link_id,), deltas in links.rows.items():
        base = current.get(link_id, {})
        objects.append(
            LinkStats(
                link_id=link_id,
                campaign_id=link_campaign[link_id],
                clicks=base.get("clicks", 0) + deltas["clicks"],
                clicks_human=base.get("clicks_human", 0) + deltas["clicks_human"],
                unique_human_clicks=base.get("unique_human_clicks", 0)
                + deltas["unique_human_clicks"],
            )
        )
    LinkStats.objects.bulk_create(
        objects,
        update_conflicts=True,
        unique_fields=["link"],
        update_fields=["campaign_id", "clicks", "clicks_human", "unique_human_clicks"],
    )


def _human_clicked_pairs(facts: list[Fact]) -> set[tuple[int, int]]:
    deliveries = {
        f.delivery_id for f in facts if f.kind == K.CLICKED and f.delivery_id and not f.anonymous
    }
    if not deliveries:
        return set()
    uids = {f.uid for f in facts}
    return {
        (d, link)
        for d, link, uid in Event.objects.filter(
            delivery_id__in=deliveries, kind=K.CLICKED, classification=rules.HUMAN
        ).values_list("delivery_id", "link_id", "uid")
        if uid not in uids
    }


def _apply_delivery_event(f, a, stats, daily, breakdown, domain, day) -> None:
    cid = f.campaign_id
    if f.kind == K.DELIVERED:
        if a.delivered_at is None:
            a.delivered_at = f.occurred_at
            stats.add((cid,), delivered=1)
            daily.add((domain, day), delivered=1)
            breakdown.add((cid, "domain", f.recipient_domain), delivered=1)
        if not a.esp_status:
            a.esp_status = "delivered"
    elif f.kind == K.DEFERRED:
        a.deferred_count += 1
        stats.add((cid,), deferred=1)
        a.esp_status = a.esp_status or "deferred"
    elif f.kind == K.BOUNCED:
        hard = f.bounce_type != Event.BounceType.SOFT
        if a.bounced_at is None:
            a.bounced_at = f.occurred_at
            a.bounce_type = f.bounce_type or "hard"
            stats.add((cid,), **{"bounced_hard" if hard else "bounced_soft": 1})
            daily.add((domain, day), **{"bounced_hard" if hard else "bounced_soft": 1})
            breakdown.add((cid, "domain", f.recipient_domain), bounced=1)
        elif hard and a.bounce_type == "soft":
            # A soft bounce that turned permanent counts once, as hard.
            a.bounce_type = "hard"
            stats.add((cid,), bounced_soft=-1, bounced_hard=1)
            daily.add((domain, day), bounced_hard=1)
        a.esp_status = "bounced"
    elif f.kind == K.REJECTED:
        if a.esp_status != "rejected":
            stats.add((cid,), rejected=1)
        a.esp_status = "rejected"
    elif f.kind == K.COMPLAINED:
        if a.complained_at is None:
            a.complained_at = f.occurred_at
            stats.add((cid,), complained=1)
            daily.add((domain, day), complained=1)
        a.esp_status = "complained"
    elif f.kind == K.UNSUBSCRIBED and a.unsubscribed_at is None:
        a.unsubscribed_at = f.occurred_at
        stats.add((cid,), unsubscribed=1)
        daily.add((domain, day), unsubscribed=1)


def _save_engagement(engagement: dict[int, dict]) -> None:
    if not engagement:
        return
    from subscribers.models import Subscriber

    existing_subscribers = set(
        Subscriber.objects.filter(id__in=engagement).values_list("id", flat=True)
    )
    current = {
        e.subscriber_id: e
        for e in SubscriberEngagement.objects.filter(subscriber_id__in=existing_subscribers)
    }
    objects = []
    for sid, delta in engagement.items():
        if sid not in existing_subscribers:
            continue
        e = current.get(sid) or SubscriberEngagement(subscriber_id=sid)
        e.human_opens += delta.get("opens", 0)
        e.human_clicks += delta.get("clicks", 0)
        for attr, key in (
            ("last_human_open_at", "last_open"),
            ("last_human_click_at", "last_click"),
            ("last_sent_at", "last_sent"),
        ):
            if delta.get(key) and (getattr(e, attr) is None or delta[key] > getattr(e, attr)):
                setattr(e, attr, delta[key])
        e.score = engagement_score(e, now=timezone.now())
        objects.append(e)
    _upsert(
        SubscriberEngagement,
        objects,
        "subscriber",
        [
            "human_opens",
            "human_clicks",
            "last_human_open_at",
            "last_human_click_at",
            "last_sent_at",
            "score",
        ],
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
