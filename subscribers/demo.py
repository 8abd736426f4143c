"""Demo audience: three topics and about a thousand subscribers."""

import random
from datetime import timedelta

from django.utils import timezone

from .models import ConsentRecord, CustomField, Segment, Subscriber, Subscription, Topic

TOPICS = [
    ("Weekly newsletter", "weekly", "Our best articles, every Tuesday."),
    ("Product updates", "product", "New features and improvements, once a month."),
    ("Events", "events", "Webinars and meetups near you."),
]
FIRST = [
    "Alice",
    "Bruno",
    "Chloé",
    "David",
    "Emma",
    "Farid",
    "Gabrielle",
    "Hugo",
    "Inès",
    "Jules",
    "Karim",
    "Léa",
    "Manon",
    "Nathan",
    "Olivia",
    "Paul",
    "Quentin",
    "Rose",
    "Sami",
    "Zoé",
]
LAST = [
    "Martin",
    "Bernard",
    "Dubois",
    "Thomas",
    "Robert",
    "Richard",
    "Petit",
    "Durand",
    "Leroy",
    "Moreau",
    "Simon",
    "Laurent",
    "Lefebvre",
    "Michel",
    "Garcia",
]
COMPANIES = ["Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark", "Wayne", ""]


def load(*, stdout) -> None:
    topics = []
    for name, slug, description in TOPICS:
        topic, _ = Topic.objects.get_or_create(
            slug=slug, defaults={"name": name, "public_name": name, "description": description}
        )
        topics.append(topic)
    CustomField.objects.get_or_create(key="company", defaults={"label": "Company"})
    CustomField.objects.get_or_create(
        key="plan",
        defaults={"label": "Plan", "type": CustomField.Type.CHOICE, "choices": ["free", "pro"]},
    )
    Segment.objects.get_or_create(
        name="Pro readers of the newsletter",
        defaults={
            "description": "Active, on the weekly newsletter, on the pro plan.",
            "rules": {
                "match": "all",
                "conditions": [
                    {"field": "status", "op": "eq", "value": "active"},
                    {"field": "topic", "op": "in", "value": "weekly"},
                    {"field": "attr.plan", "op": "eq", "value": "pro"},
                ],
            },
        },
    )
    if Subscriber.objects.exists():
        stdout.write("Demo audience already present.")
        return
    rng = random.Random(42)
    now = timezone.now()
    statuses = [Subscriber.Status.ACTIVE] * 17 + [
        Subscriber.Status.UNCONFIRMED,
        Subscriber.Status.UNSUBSCRIBED,
        Subscriber.Status.BOUNCED,
    ]
    people = []
    for i in range(1000):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        status = rng.choice(statuses)
        people.append(
            Subscriber(
                email=f"{first.lower()}.{last.lower()}.{i}@example.com".replace("é", "e")
                .replace("è", "e")
                .replace("ï", "i"),
                first_name=first if i % 10 else "",
                last_name=last,
                attributes={"company": rng.choice(COMPANIES), "plan": rng.choice(["free", "pro"])},
                status=status,
                source=rng.choice(list(Subscriber.Source)),
                language="fr" if i % 3 == 0 else "en",
                confirmed_at=now if status != Subscriber.Status.UNCONFIRMED else None,
            )
        )
    created = Subscriber.objects.bulk_create(people, batch_size=500)
    # Spread join dates over the last year so charts and "joined since" rules have a history.
    for subscriber in created:
        subscriber.created_at = now - timedelta(days=rng.randint(0, 365))
    Subscriber.objects.bulk_update(created, ["created_at"], batch_size=500)
    Subscription.objects.bulk_create(
        [
            Subscription(subscriber=s, topic=t)
            for s in created
            for t in topics
            if rng.random() < 0.6
        ],
        batch_size=1000,
    )
    ConsentRecord.objects.bulk_create(
        [
            ConsentRecord(
                subscriber=s,
                text="Yes, send me the newsletter. I can unsubscribe at any time.",
                version="2024-01",
                where=ConsentRecord.Where.FORM,
            )
            for s in created
            if s.confirmed_at
        ],
        batch_size=1000,
    )
    stdout.write(f"Demo audience: {len(topics)} topics, {len(created)} subscribers.")
