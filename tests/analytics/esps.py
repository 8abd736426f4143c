"""Every ESP anymail has a tracking webhook for: its keys in the test settings, its documented
bounce payloads, and a poster that authenticates a body as that ESP does (basic auth, plus
the ESP's own signature where its webhook is signed), to the real endpoint."""

import base64
import hashlib
import hmac
import json
import time
from urllib.parse import parse_qsl, quote

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from analytics import buffer

AUTH = "esp:hook-secret"
MAILGUN_KEY = "mailgun-signing-key"
MAILERSEND_SECRET = "mailersend-signing-secret"
MAILTRAP_SECRET = "mailtrap-tracking-secret"
MANDRILL_KEY = "mandrill-webhook-key"
UNISENDER_GO_KEY = "unisender-go-api-key"
POSTAL_PRIVATE_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
POSTAL_PUBLIC_KEY = "\n".join(
    POSTAL_PRIVATE_KEY.public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    .decode()
    .splitlines()[1:-1]
)

SETTINGS = {
    "WEBHOOK_SECRET": AUTH,
    "MAILGUN_WEBHOOK_SIGNING_KEY": MAILGUN_KEY,
    "MAILERSEND_SIGNING_SECRET": MAILERSEND_SECRET,
    "MAILTRAP_TRACKING_SECRET": MAILTRAP_SECRET,
    "MANDRILL_WEBHOOK_KEY": MANDRILL_KEY,
    "POSTAL_WEBHOOK_KEY": POSTAL_PUBLIC_KEY,
    "UNISENDER_GO_API_KEY": UNISENDER_GO_KEY,
}

# anymail's tracking endpoints (sendinblue: Brevo's old name, still routed).
ESPS = [
    "amazon_ses",
    "brevo",
    "sendinblue",
    "mailersend",
    "mailgun",
    "mailjet",
    "mailtrap",
    "mandrill",
    "postal",
    "postmark",
    "resend",
    "sendgrid",
    "sparkpost",
    "unisender_go",
]
PATHS = {esp: f"/anymail/{esp}/tracking/" for esp in ESPS}
PATHS["mandrill"] = "/anymail/mandrill/"


def numbered(delivery, n=0):
    """The delivery with a numeric message id: Mailjet's MessageID and Postal's message id
    are integers (any ESP's id matches a delivery the same way)."""
    delivery.message_id = str(13792286917004336 + delivery.pk * 10 + n)
    delivery.save(update_fields=["message_id"])
    return delivery


def post(client, esp, body, *, content_type="application/json", auth=AUTH, flush=True, **headers):
    """POST ``body`` (a payload, or raw bytes sent as they are) to the ESP's tracking
    endpoint, authenticated and signed as that ESP does; then, unless ``flush`` is False, run
    the flusher as beat does every TRACKING_FLUSH_SECONDS (the endpoint buffers the events)."""
    path = PATHS[esp]
    if not isinstance(body, bytes | str):
        if esp == "mandrill":
            content_type = "application/x-www-form-urlencoded"
            body = "mandrill_events=" + _quote(json.dumps(body))
        else:
            body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode()
    if esp == "mailersend":
        headers["HTTP_SIGNATURE"] = hmac.new(
            MAILERSEND_SECRET.encode(), body, hashlib.sha256
        ).hexdigest()
    elif esp == "mailtrap":
        headers["HTTP_MAILTRAP_SIGNATURE"] = hmac.new(
            MAILTRAP_SECRET.encode(), body, hashlib.sha256
        ).hexdigest()
    elif esp == "postal":
        signature = POSTAL_PRIVATE_KEY.sign(body, padding.PKCS1v15(), hashes.SHA1())  # noqa: S303
        headers["HTTP_X_POSTAL_SIGNATURE"] = base64.b64encode(signature).decode()
    elif esp == "mandrill":
        # Mandrill signs the URL it posts to (basic auth included) and the sorted form fields.
        signed = f"http://{auth}@testserver{path}"
        if content_type == "application/x-www-form-urlencoded":
            params = dict(parse_qsl(body.decode("latin-1"), keep_blank_values=True))
            signed += "".join(k + params[k] for k in sorted(params))
        digest = hmac.new(MANDRILL_KEY.encode(), signed.encode(), hashlib.sha1).digest()
        headers["HTTP_X_MANDRILL_SIGNATURE"] = base64.b64encode(digest).decode()
    elif esp == "amazon_ses":
        try:
            sns = json.loads(body)
            headers.setdefault("HTTP_X_AMZ_SNS_MESSAGE_TYPE", sns["Type"])
            headers.setdefault("HTTP_X_AMZ_SNS_MESSAGE_ID", sns["MessageId"])
        except (ValueError, TypeError, KeyError, RecursionError):
            headers.setdefault("HTTP_X_AMZ_SNS_MESSAGE_TYPE", "Notification")
    response = client.post(
        path,
        data=body,
        content_type=content_type,
        HTTP_AUTHORIZATION="Basic " + base64.b64encode(auth.encode()).decode(),
        **headers,
    )
    if flush:
        buffer.flush()
    return response


def _quote(text: str) -> str:
    return quote(text, safe="")


# --- the payloads, as each ESP documents them ----------------------------------------------------


def mailgun_signed(event_data: dict) -> dict:
    """Mailgun's JSON webhook: the signature block (HMAC of timestamp + token) beside it."""
    timestamp = str(int(time.time()))
    token = hashlib.sha256(repr(event_data).encode()).hexdigest()[:50]
    signature = hmac.new(
        MAILGUN_KEY.encode(), f"{timestamp}{token}".encode(), hashlib.sha256
    ).hexdigest()
    return {
        "signature": {"timestamp": timestamp, "token": token, "signature": signature},
        "event-data": event_data,
    }


def unisender_go_signed(event_data: dict) -> str:
    return unisender_go_sign(
        {
            "auth": "",
            "events_by_user": [
                {
                    "user_id": 5960727,
                    "project_id": "6862471",
                    "project_name": "Testing",
                    "events": [
                        {"event_name": "transactional_email_status", "event_data": event_data}
                    ],
                }
            ],
        }
    )


def unisender_go_sign(data) -> str:
    """Unisender Go's "auth": the MD5 of the body with the API key where the auth goes."""
    data = {**data, "auth": "PLACEHOLDER"} if isinstance(data, dict) else data
    serialized = json.dumps(data)
    auth = hashlib.md5(serialized.replace("PLACEHOLDER", UNISENDER_GO_KEY).encode()).hexdigest()  # noqa: S324
    return serialized.replace("PLACEHOLDER", auth)


def iso_now() -> str:
    """Now, as ESPs write it: the reputation window is the last days, not a fixed date."""
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())


def sns(ses_message: dict, message_id: str) -> dict:
    return {
        "Type": "Notification",
        "MessageId": message_id,
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:ses-events",
        "Subject": "Amazon SES Email Event Notification",
        "Message": json.dumps(ses_message),
        "Timestamp": iso_now(),
        "SignatureVersion": "1",
        "Signature": "EXAMPLEpH+..",
        "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-x.pem",
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&x=1",
    }


def bounce(esp: str, delivery, *, variant: str, reply: str = "", **extra):
    """The ESP's documented bounce event for ``delivery``; ``variant`` picks the ESP's own
    kind of bounce (its field values), ``reply`` the receiving server's answer."""
    email, mid = delivery.email, delivery.message_id.strip("<>")
    now = int(time.time())
    if esp == "amazon_ses":
        kind, subtype, status = {
            "permanent": ("Permanent", "General", "5.1.1"),
            "transient": ("Transient", "MailboxFull", "5.2.2"),
            "content": ("Transient", "ContentRejected", "5.3.0"),
            "undetermined": ("Undetermined", "Undetermined", "5.0.0"),
        }[variant]
        message = {
            "notificationType": "Bounce",
            "bounce": {
                "bounceType": kind,
                "bounceSubType": subtype,
                "bouncedRecipients": [
                    {
                        "emailAddress": email,
                        "action": "failed",
                        "status": status,
                        "diagnosticCode": reply or f"smtp; 550 {status} failed",
                    }
                ],
                "timestamp": iso_now(),
                "feedbackId": f"0100017e-{delivery.pk}-bounce",
                "reportingMTA": "dsn; a8-70.smtp-out.amazonses.com",
            },
            "mail": {
                "timestamp": iso_now(),
                "source": "hello@news.example.com",
                "messageId": mid,
                "destination": [email],
            },
        }
        return sns(message, message_id=f"sns-{delivery.pk}-{variant}")
    if esp in {"brevo", "sendinblue"}:
        return {
            "event": variant,  # hard_bounce / soft_bounce / invalid_email
            "email": email,
            "id": 123456,
            "date": iso_now(),
            "message-id": delivery.message_id,
            "reason": reply,
            "tag": "",
            "sending_ip": "185.41.28.109",
            "ts_epoch": now * 1000,
            **extra,
        }
    if esp == "mailersend":
        return {
            "type": f"activity.{variant}",
            "domain_id": "7z3m5jgrogdpyo6n",
            "created_at": iso_now(),
            "webhook_id": "zbyd1xr2k4qlk7ve",
            "url": "https://news.example.com/anymail/mailersend/tracking/",
            "data": {
                "object": "activity",
                "id": f"62f114f8165fe0d8db0288e{delivery.pk}",
                "type": variant,  # hard_bounced / soft_bounced
                "created_at": iso_now(),
                "email": {
                    "object": "email",
                    "status": "rejected",
                    "tags": None,
                    "message": {"object": "message", "id": mid},
                    "recipient": {"object": "recipient", "email": email},
                },
                "morph": {"object": "recipient_bounce", "reason": reply},
            },
        }
    if esp == "mailgun":
        code, message = reply[:3], reply[4:]
        return mailgun_signed(
            {
                "id": f"G9Bn5sl1TC6bjEmrB3Ta0{delivery.pk}",
                "timestamp": time.time(),
                "log-level": "error" if variant == "permanent" else "warn",
                "event": "failed",
                "severity": variant,  # permanent / temporary
                "reason": extra.pop("reason", "bounce" if variant == "permanent" else "generic"),
                "recipient": email,
                "recipient-domain": delivery.domain,
                "message": {"headers": {"message-id": mid}},
                "delivery-status": {
                    "attempt-no": 1,
                    "code": int(code),
                    "message": message,
                    "description": "",
                },
                "flags": {"is-test-mode": False},
            }
        )
    if esp == "mailjet":
        return {
            "event": "bounce",
            "time": now,
            "MessageID": int(mid),
            "Message_GUID": "1ab23cd4-e567-8901-2345-6789f0gh1i2j",
            "email": email,
            "mj_campaign_id": 0,
            "mj_contact_id": 0,
            "customcampaign": "",
            "CustomID": "",
            "Payload": "",
            "blocked": False,
            "comment": reply,
            **extra,  # hard_bounce, error_related_to, error
        }
    if esp == "mailtrap":
        code = reply.partition("(")[2][:3]
        return {
            "events": [
                {
                    "event": variant,  # bounce / soft bounce
                    "timestamp": now,
                    "sending_stream": "bulk",
                    "message_id": mid,
                    "email": email,
                    "event_id": f"bede7236-2284-43d6-a953-1fdcafd0fd{delivery.pk:02d}",
                    "response": reply,
                    "response_code": int(code) if code.isdigit() else None,
                    **extra,  # bounce_category
                }
            ]
        }
    if esp == "mandrill":
        return [
            {
                "event": variant,  # hard_bounce / soft_bounce
                "_id": mid,
                "ts": now,
                "msg": {
                    "ts": now - 60,
                    "subject": "Spring sale",
                    "email": email,
                    "sender": "hello@news.example.com",
                    "state": variant.replace("_", "-") + "d",
                    "diag": reply,
                    "_id": mid,
                    **extra,  # bounce_description, bgtools_code
                },
            }
        ]
    if esp == "postal":
        message = {
            "id": int(mid),
            "token": "McC2tuqg7mhx",
            "direction": "outgoing",
            "message_id": f"{mid}@rp.postal.example.com",
            "to": email,
            "from": "hello@news.example.com",
            "subject": "Spring sale",
            "timestamp": now - 60,
            "spam_status": "NotChecked",
            "tag": None,
        }
        if variant == "bounced":
            payload = {
                "original_message": message,
                "bounce": {**message, "id": 233864, "direction": "incoming"},
            }
            event = "MessageBounced"
        else:
            payload = {
                "message": message,
                "status": variant,  # HardFail / SoftFail
                "details": "Permanent SMTP delivery error",
                "output": reply,
                "sent_with_ssl": True,
                "timestamp": now,
                "time": 0.1,
            }
            event = "MessageDeliveryFailed" if variant == "HardFail" else "MessageDelayed"
        return {
            "event": event,
            "timestamp": now,
            "payload": payload,
            "uuid": f"5fec5077-dae7-4989-94d5-e1963f3e91{delivery.pk:02d}",
        }
    if esp == "postmark":
        codes = {
            "HardBounce": 1,
            "SoftBounce": 4096,
            "Blocked": 100006,
            "DMARCPolicy": 100009,
            "BadEmailAddress": 100000,
        }
        return {
            "RecordType": "Bounce",
            "ID": 4323372036854775800 + delivery.pk,
            "Type": variant,
            "TypeCode": codes[variant],
            "Name": variant,
            "Tag": "",
            "MessageID": mid,
            "Metadata": {},
            "ServerID": 23,
            "MessageStream": "outbound",
            "Description": "The server was unable to deliver your message.",
            "Details": reply,
            "Email": email,
            "From": "hello@news.example.com",
            "BouncedAt": iso_now(),
            "DumpAvailable": True,
            "Inactive": variant == "HardBounce",
            "CanActivate": True,
            "Subject": "Spring sale",
        }
    if esp == "resend":
        kind, subtype, message = {
            "permanent": (
                "Permanent",
                "General",
                "The recipient's email provider sent a hard bounce message.",
            ),
            "transient": (
                "Transient",
                "MailboxFull",
                "The recipient's email provider sent a bounce message because the "
                "recipient's inbox was full.",
            ),
            "undetermined": (
                "Undetermined",
                "Undetermined",
                "The recipient's email provider sent a bounce message.",
            ),
        }[variant]
        return {
            "type": "email.bounced",
            "created_at": iso_now(),
            "data": {
                "created_at": iso_now(),
                "email_id": mid,
                "from": "Spring <hello@news.example.com>",
                "subject": "Spring sale",
                "to": [email],
                "bounce": {"message": message, "subType": subtype, "type": kind},
            },
        }
    if esp == "sendgrid":
        return [
            {
                "email": email,
                "timestamp": now,
                "anymail_id": mid,
                "smtp-id": delivery.message_id,
                "event": "bounce",
                "category": ["spring"],
                "sg_event_id": f"6g4ZI7SA-xmRDv57GoPIP{delivery.pk}==",
                "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
                "reason": reply,
                "status": reply.split(" ")[1] if " " in reply else "5.0.0",
                "type": variant,  # bounce / blocked
                **extra,  # bounce_classification
            }
        ]
    if esp == "sparkpost":
        return [
            {
                "msys": {
                    "message_event": {
                        "type": variant,  # bounce / out_of_band
                        "event_id": f"9235692769381385{delivery.pk}",
                        "transmission_id": mid,
                        "message_id": "0002a4b5e15f5f52a1c2",
                        "rcpt_to": email.lower(),
                        "raw_rcpt_to": email,
                        "timestamp": str(now),
                        "customer_id": "1",
                        "friendly_from": "hello@news.example.com",
                        "sending_ip": "18.236.253.72",
                        "subject": "Spring sale",
                        "raw_reason": reply,
                        "reason": reply,
                        "error_code": reply[:3],
                        **extra,  # bounce_class
                    }
                }
            }
        ]
    if esp == "unisender_go":
        return unisender_go_signed(
            {
                "job_id": mid,
                "email": email,
                "status": variant,  # hard_bounced / soft_bounced
                "event_time": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now)),
                "delivery_info": {"destination_response": reply, **extra},
            }
        )
    raise AssertionError(esp)
