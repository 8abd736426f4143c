"""Demo event history for the finished demo campaign, so the reports are not empty.

Runs after campaigns.demo. Everything goes through the real ingestion path (classification,
rollups, suppressions, reputation), with deterministic uids: a second run adds nothing.
"""

import random
from datetime import timedelta

from campaigns.models import Campaign, Delivery

from .ingest import Fact, ingest_facts
from .models import Event, SendingDomain, SunsetPolicy

HUMAN_AGENTS = [
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Mobile/15E148",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0 Safari/537.36 Edg/126.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 "
    "Mobile Safari/537.36",
    "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17726; Pro)",
]


def load(*, stdout) -> None:
    campaign = Campaign.objects.filter(name="October newsletter").first()
    if campaign is None:
        stdout.write("Analytics demo: no finished demo campaign, nothing to add.")
        return
    SendingDomain.objects.get_or_create(
        domain="example.com", defaults={"spf_include": "mailgun.org", "dkim_selector": "k1"}
    )
    if not SunsetPolicy.objects.exists():
        SunsetPolicy.objects.create(reengagement_campaign=None)
    if Event.objects.filter(uid__startswith="demo:", campaign_id=campaign.pk).exists():
        stdout.write("Analytics demo events already present.")
        return
    rng = random.Random(campaign.pk)
    links = list(campaign.links.values_list("id", flat=True))
    facts: list[Fact] = []
    rows = Delivery.objects.filter(campaign=campaign, status=Delivery.Status.SENT).values_list(
        "id", "sent_at"
    )
    for n, (delivery_id, sent_at) in enumerate(rows.iterator()):

        def fact(kind, after, *, _d=delivery_id, _sent=sent_at, **extra):
            facts.append(
                Fact(
                    uid=f"demo:{kind}:{_d}:{len(facts)}",
                    kind=kind,
                    occurred_at=_sent + after,
                    stable_time=True,  # the same sent_at and offset on a second run
                    delivery_id=_d,
                    esp=extra.pop("esp", ""),
                    **extra,
                )
            )

        roll = rng.random()
        if roll < 0.012:
            fact(
                "bounced",
                timedelta(seconds=20),
                esp="mailgun",
                bounce_type="hard",
                reason="bounced 550 5.1.1 user unknown",
            )
            continue
        if roll < 0.02:
            fact(
                "bounced",
                timedelta(minutes=5),
                esp="mailgun",
                bounce_type="soft",
                reason="452 4.2.2 mailbox full",
            )
            continue
        fact("delivered", timedelta(seconds=rng.randint(2, 60)), esp="mailgun")
        if rng.random() < 0.3:  # Apple Mail Privacy Protection fetches at delivery
            fact(
                "opened",
                timedelta(minutes=rng.randint(1, 10)),
                ip="17.58.63.1",
                user_agent="Mozilla/5.0",
                method="GET",
            )
        if links and rng.random() < 0.08:  # a security scanner walks every link
            for link in links:
                fact(
                    "clicked",
                    timedelta(seconds=3),
                    link_id=link,
                    ip="40.107.22.10",
                    user_agent="Mozilla/5.0",
                    method="HEAD",
                )
        if rng.random() < 0.38:
            agent = rng.choice(HUMAN_AGENTS)
            opened = timedelta(hours=rng.expovariate(1 / 20))
            fact("opened", opened, ip=f"81.2.{n % 250}.{n % 200}", user_agent=agent, method="GET")
            if links and rng.random() < 0.3:
                fact(
                    "clicked",
                    opened + timedelta(minutes=1),
                    link_id=rng.choice(links),
                    ip=f"81.2.{n % 250}.{n % 200}",
                    user_agent=agent,
                    method="GET",
                )
            if rng.random() < 0.01:
                fact("unsubscribed", opened + timedelta(minutes=2), esp="mailgun")
        if rng.random() < 0.002:
            fact("complained", timedelta(days=1), esp="mailgun", reason="abuse")
    for start in range(0, len(facts), 2000):
        ingest_facts(facts[start : start + 2000])
    stdout.write(f"Analytics demo: {len(facts)} events for “{campaign.name}”.")
