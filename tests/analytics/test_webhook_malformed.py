"""No body, however malformed, gets a 500 from a tracking webhook: it gets a 400 and nothing
is stored, on every ESP's endpoint, authenticated and signed as that ESP does. Only a failure
of ours (the database) answers 500, so the ESP retries."""

import json

import pytest
from django.db import OperationalError

from analytics import buffer, ingest
from analytics.models import CampaignStats, Event
from subscribers.models import Suppression
from tests.analytics import esps

REPLY = "550 5.1.1 The email account that you tried to reach does not exist."
# The documented hard bounce of each ESP (see test_webhook_bounces), to be broken.
HARD = {
    "amazon_ses": ("permanent", {}),
    "brevo": ("hard_bounce", {}),
    "sendinblue": ("hard_bounce", {}),
    "mailersend": ("hard_bounced", {}),
    "mailgun": ("permanent", {}),
    "mailjet": ("bounce", {"hard_bounce": True, "error": "user unknown"}),
    "mailtrap": ("bounce", {"bounce_category": "hard"}),
    "mandrill": ("hard_bounce", {"bounce_description": "bad_mailbox"}),
    "postal": ("HardFail", {}),
    "postmark": ("HardBounce", {}),
    "resend": ("permanent", {}),
    "sendgrid": ("bounce", {"bounce_classification": "Invalid Address"}),
    "sparkpost": ("bounce", {"bounce_class": "10"}),
    "unisender_go": ("hard_bounced", {"delivery_status": "err_user_unknown"}),
}
LISTS = {"sendgrid", "sparkpost", "mandrill"}  # ESPs whose body is a JSON array

JUNK = {
    "malformed JSON": (b'{"event": "bounce", "email": ', "application/json"),
    "null": (b"null", "application/json"),
    "a string": (b'"bounce"', "application/json"),
    "a number": (b"1e999", "application/json"),
    "an array of scalars": (b'[1, "two", null]', "application/json"),
    "deep nesting": (b"[" * 100_000, "application/json"),
    "a form": (b"event=bounce&email=reader%40example.com", "application/x-www-form-urlencoded"),
    "binary": (bytes(range(256)) * 64, "application/octet-stream"),
    "binary sent as JSON": (b"\xff\xfe" + bytes(range(256)) * 64, "application/json"),
    "5 MB of junk": (b"x" * (5 * 1024 * 1024), "application/json"),
}


@pytest.fixture(autouse=True)
def _anymail(settings):
    settings.ANYMAIL = {**settings.ANYMAIL, **esps.SETTINGS}


def _bounce(esp, delivery):
    variant, extra = HARD[esp]
    return esps.bounce(esp, esps.numbered(delivery), variant=variant, reply=REPLY, **extra)


def _nothing_stored():
    return not Event.objects.exists() and not Suppression.objects.exists()


@pytest.mark.parametrize("junk", JUNK)
@pytest.mark.parametrize("esp", esps.ESPS)
def test_a_body_that_is_not_the_esps_format_answers_400_and_stores_nothing(
    client, sent_campaign, esp, junk
):
    body, content_type = JUNK[junk]
    response = esps.post(client, esp, body, content_type=content_type)
    assert response.status_code == 400
    assert _nothing_stored()


@pytest.mark.parametrize("esp", esps.ESPS)
def test_the_wrong_shape_of_json_answers_400(client, sent_campaign, esp):
    """An array where the ESP sends an object, an object where it sends an array."""
    payload = _bounce(esp, sent_campaign[2][0])
    if isinstance(payload, str):  # Unisender Go: the signed text
        payload = json.loads(payload)
    if esp == "mailjet":
        wrong = {"events": [payload]}  # (Mailjet itself sends either an object or an array)
    elif esp in LISTS:
        wrong = payload[0]
    else:
        wrong = [payload]
    body = esps.unisender_go_sign(wrong) if esp == "unisender_go" else wrong
    assert esps.post(client, esp, body).status_code == 400
    assert _nothing_stored()


def _broken_inside(esp, delivery):
    """The ESP's envelope intact (signature, SNS notification) around a body that is not."""
    if esp == "amazon_ses":
        return [{**_bounce(esp, delivery), "Message": m} for m in ("{oops", "null", "[]", "7")]
    if esp == "mailgun":
        return [esps.mailgun_signed(v) for v in (None, [], "failed", {"event": None})]
    if esp == "unisender_go":
        return [
            esps.unisender_go_sign({"events_by_user": v}) for v in (None, [], [1], [{"x": 1}])
        ] + [esps.unisender_go_sign({"event_name": "transactional_email_status"})]
    if esp == "mailtrap":
        return [{"events": v} for v in (None, [1], [{}], [{"event": "bounce"}])]
    if esp == "mandrill":
        return ["mandrill_events=%7Boops", "mandrill_events=null", "other=1"]
    if esp == "postal":
        return [{"event": "MessageDeliveryFailed", "timestamp": "soon", "payload": {}}]
    if esp == "mailjet":
        return [[{"event": "bounce", "time": "yesterday"}], [{}], {"event": None}]
    if esp in {"sendgrid", "sparkpost"}:
        return [[{}], [{"msys": {"message_event": 1}}], [{"event": None, "timestamp": []}]]
    return [{}, {"event": None}, {"RecordType": None, "type": []}, {"data": None, "type": 1}]


@pytest.mark.parametrize("esp", esps.ESPS)
def test_an_intact_envelope_around_a_broken_event_answers_400(client, sent_campaign, esp):
    for body in _broken_inside(esp, sent_campaign[2][0]):
        content_type = (
            "application/x-www-form-urlencoded" if esp == "mandrill" else "application/json"
        )
        if isinstance(body, dict | list):
            body = json.dumps(body)
        response = esps.post(client, esp, body, content_type=content_type)
        assert response.status_code == 400, body
    assert _nothing_stored()


JUNK_VALUES = [None, [], "\x00", 10**30, -1e300, "9" * 40]


def _leaves(value, path=()):
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _leaves(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _leaves(v, (*path, i))
    else:
        yield path


def _replaced(value, path, new):
    if not path:
        return new
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = _replaced(value[path[0]], path[1:], new)
    return copy


@pytest.mark.parametrize("esp", esps.ESPS)
def test_no_field_of_a_real_event_set_to_junk_gets_a_500(client, sent_campaign, esp):
    """Every field of the ESP's documented bounce, in turn, null / a list / a NUL /
    a huge number / a long digit string: each answer is 200 (stored as well as it can be)
    or 400 (refused), never an error."""
    d = sent_campaign[2][0]
    original = _bounce(esp, d)
    if esp == "unisender_go":
        original = json.loads(original)
    inner = json.loads(original["Message"]) if esp == "amazon_ses" else original
    statuses = set()
    for path in _leaves(inner):
        if esp == "unisender_go" and path == ("auth",):
            continue
        for junk in JUNK_VALUES:
            broken = _replaced(inner, path, junk)
            if esp == "amazon_ses":
                broken = {**original, "Message": json.dumps(broken)}
            body = esps.unisender_go_sign(broken) if esp == "unisender_go" else broken
            response = esps.post(client, esp, body)
            assert response.status_code in (200, 400), (path, junk)
            statuses.add(response.status_code)
    assert statuses == {200, 400}


def test_an_event_naming_no_message_and_no_recipient_is_dropped_from_its_batch(
    client, sent_campaign
):
    _, _, deliveries = sent_campaign
    batch = [*_bounce("sendgrid", deliveries[0]), {"event": "bounce", "reason": "who?"}]
    assert esps.post(client, "sendgrid", batch).status_code == 200
    assert Event.objects.get().delivery_id == deliveries[0].pk


def test_a_nul_character_from_the_esp_is_stored_without_it(client, sent_campaign):
    _, _, deliveries = sent_campaign
    payload = esps.bounce("brevo", deliveries[0], variant="hard_bounce", reply="550\x00 5.1.1 gone")
    assert esps.post(client, "brevo", payload).status_code == 200
    event = Event.objects.get()
    assert "\x00" not in event.reason and event.payload["reason"] == "550 5.1.1 gone"


def test_a_database_failure_without_redis_answers_503_so_the_esp_retries(
    client, settings, sent_campaign, monkeypatch
):
    settings.TRACKING_REDIS_URL = None  # the events are ingested before the answer
    _, _, deliveries = sent_campaign

    def down(facts):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(ingest, "_store", down)
    payload = _bounce("postmark", deliveries[0])
    response = esps.post(client, "postmark", payload)
    assert response.status_code == 503 and response["Retry-After"]
    monkeypatch.undo()
    # The retry, once the database is back, counts the event (once).
    assert esps.post(client, "postmark", payload).status_code == 200
    assert esps.post(client, "postmark", payload).status_code == 200
    assert Event.objects.count() == 1
    assert CampaignStats.objects.get().bounced_hard == 1


def test_a_database_failure_behind_the_buffer_keeps_the_events_for_the_next_flush(
    client, sent_campaign, monkeypatch
):
    _, _, deliveries = sent_campaign

    def down(facts):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(ingest, "_store", down)
    payload = _bounce("postmark", deliveries[0])
    # Redis has the event: the ESP may stop sending it.
    assert esps.post(client, "postmark", payload, flush=False).status_code == 200
    with pytest.raises(OperationalError):
        buffer.flush()
    assert buffer.pending() == 1 and not Event.objects.exists()
    monkeypatch.undo()
    assert buffer.flush() == 1
    assert esps.post(client, "postmark", payload).status_code == 200  # an ESP's retry
    assert Event.objects.count() == 1
    assert CampaignStats.objects.get().bounced_hard == 1
    assert Suppression.objects.get(email_hash=deliveries[0].email_hash)


def test_an_esp_whose_key_is_not_configured_answers_503_not_a_crash(client, settings, db):
    settings.ANYMAIL = {"WEBHOOK_SECRET": esps.AUTH}  # no MailerSend signing secret
    response = esps.post(client, "mailersend", {"type": "activity.hard_bounced"})
    assert response.status_code == 503
    assert b"not configured" in response.content
    assert not Event.objects.exists()


@pytest.mark.parametrize("esp", ["brevo", "mailersend", "mailtrap", "postal", "resend"])
def test_an_inbound_endpoint_whose_key_is_not_configured_answers_503_not_a_crash(
    client, db, settings, esp
):
    """Inbound mail (the mailto: unsubscribe) comes through anymail's inbound views: an ESP
    with no key set refuses it plainly, to a POST or a GET alike."""
    settings.ANYMAIL = {"WEBHOOK_SECRET": esps.AUTH}  # no ESP's own key
    url = f"/anymail/{esp}/inbound/"
    posted = client.post(url, b"{}", content_type="application/json")
    assert posted.status_code == 503 and b"not configured" in posted.content
    assert client.get(url).status_code < 500
