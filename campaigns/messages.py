"""Campaign messages: everything that is the same for every recipient is prepared once per
campaign (compiled template, header block, link ids, footer); per recipient only the merge
values, the signed URLs and the body encoding remain.

Two outputs: ``raw()`` bytes for SMTP and the sandbox (a prebuilt header block plus quoted-
printable bodies: about ten times cheaper than serializing Django's EmailMultiAlternatives), and
``email_message()`` for django-anymail ESP backends, which take a message object.
"""

import binascii
import hashlib
import hmac
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from email.header import Header
from email.utils import formataddr, formatdate

from anymail.message import AnymailMessage
from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.core.mail.backends.base import BaseEmailBackend
from django.urls import reverse
from django.utils.text import slugify

from analytics import dkim
from analytics.bounce_mail import verp_address
from analytics.dkim_keys import signers_for
from analytics.models import Link
from analytics.tracking import ClickUrls
from core.recipient_links import PREFERENCES, UNSUBSCRIBE, recipient_token
from templates_app.merge import parse
from templates_app.rendering import compile_version

from .models import Campaign, CampaignTransitionError

FOOTER_HTML = (
    '<div style="font-size:12px;color:#666;text-align:center;padding:16px">'
    "{{ company_name }} · {{ postal_address }}<br>"
    '<a href="{{ unsubscribe_url }}">Unsubscribe</a> · '
    '<a href="{{ preferences_url }}">Manage your preferences</a></div>'
)
FOOTER_TEXT = (
    "\n--\n{{ company_name }}, {{ postal_address }}\n"
    "Unsubscribe: {{ unsubscribe_url }}\nPreferences: {{ preferences_url }}\n"
)
GMAIL_CLIP_BYTES = 102 * 1024


@dataclass(slots=True)
class BuiltMessage:
    to: str
    subject: str
    html: str
    text: str
    message_id: str
    headers: dict[str, str]
    delivery_id: int | None


def _encode_header(value: str) -> str:
    """RFC 2047 encoded words for non-ASCII values, folded with CRLF (RFC 5322 §2.3: a bare
    LF is refused by servers hardened against SMTP smuggling)."""
    if value.isascii():
        return value
    return Header(value, "utf-8").encode(linesep="\r\n")


def _qp(text: str) -> bytes:
    # b2a_qp escapes "=" so the "=_" boundary below can never appear inside a body.
    return binascii.b2a_qp(text.encode("utf-8"), istext=True).replace(b"\n", b"\r\n")


class MessageFactory:
    def __init__(self, campaign: Campaign, *, test_send: bool = False):
        self.campaign = campaign
        version = campaign.template_version
        if version is None and campaign.template is not None:
            version = campaign.template.versions.order_by("-number").first()
        if version is None:
            raise CampaignTransitionError("Choose a template with a saved version first.")
        # The campaign's own subject / preheader replace the template's at compile time, so
        # the hidden preheader text is laid out once, by the template pipeline.
        self.compiled = compile_version(
            version,
            track_links=campaign.track_links,
            subject=campaign.subject or None,
            preheader=campaign.preheader or None,
        )
        self.subject_plan = self.compiled.subject
        link_ids: list[int] = []
        if campaign.track_links and self.compiled.links and not test_send:
            by_index = dict(Link.objects.filter(campaign=campaign).values_list("index", "id"))
            link_ids = [by_index[i] for i in range(len(self.compiled.links))]
        self.tracking = ClickUrls(link_ids) if link_ids else None
        # Opens are tracked whether or not the message has a tracked link.
        self.pixel = self.tracking or (
            ClickUrls([]) if campaign.track_opens and not test_send else None
        )
        self.untracked_links = list(self.compiled.links)
        # Most layouts carry the unsubscribe / preferences footer; a bare template gets ours.
        self.has_footer = "unsubscribe_url" in self.compiled.html.paths
        self.text_has_footer = "unsubscribe_url" in self.compiled.text.paths
        self.footer_html = parse(FOOTER_HTML)
        self.footer_text = parse(FOOTER_TEXT)
        self.from_email = campaign.from_email or settings.DEFAULT_FROM_EMAIL
        self.from_header = (
            formataddr((campaign.from_name, self.from_email))
            if campaign.from_name
            else self.from_email
        )
        connection = campaign.connection
        self.domain = (
            (connection.sending_domain if connection else "")
            or self.from_email.rpartition("@")[2].strip(">")
            or "localhost"
        )
        self.list_id_header = list_id(campaign, self.domain)
        self.mailto = getattr(settings, "UNSUBSCRIBE_MAILTO", "") or f"unsubscribe@{self.domain}"
        # Gmail's Feedback-ID: campaign:tag:kind:sender, the last part identifying us.
        # ASCII only: a French tag ("été") becomes "ete".
        tag = slugify(str(campaign.tags[0])) if campaign.tags else ""
        self.feedback_id = f"{campaign.pk}:{tag or 'none'}:newsletter:nofailmail"
        self.id_tag = message_id_tag(campaign)
        self._signers: list[dkim.Signer] | None = None
        self.bounce_domain = (
            (connection.options or {}).get("bounce_domain") if connection else ""
        ) or settings.BOUNCE_DOMAIN
        self.boundary = "=_nfm_" + uuid.uuid4().hex
        self.common_headers = (
            f"From: {_encode_header(self.from_header)}\r\n"
            + (f"Reply-To: {campaign.reply_to}\r\n" if campaign.reply_to else "")
            + "MIME-Version: 1.0\r\n"
            f"List-Id: {self.list_id_header}\r\n"
            f"Feedback-ID: {self.feedback_id}\r\n"
            "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
            f'Content-Type: multipart/alternative; boundary="{self.boundary}"\r\n'
        ).encode()
        self._date = ("", 0)
        # The same URLs as core.recipient_links builds, with reverse() run once per campaign.
        self.unsubscribe_prefix, self.unsubscribe_suffix = _url_around("preferences:unsubscribe")
        self.preferences_prefix, self.preferences_suffix = _url_around("preferences:center")
        self.company = {
            "company_name": settings.COMPANY_NAME,
            "postal_address": settings.COMPANY_POSTAL_ADDRESS,
        }

    def context(self, *, delivery_id, subscriber_id, recipient: Mapping) -> dict:
        """``recipient`` comes from templates_app.fields.recipient_contexts (or
        recipient_context), the one builder of a recipient's merge values; this adds what
        belongs to the message: signed links, tracked link URLs, the sender's identity."""
        token = recipient_token(UNSUBSCRIBE, subscriber_id=subscriber_id, delivery_id=delivery_id)
        unsubscribe = self.unsubscribe_prefix + token + self.unsubscribe_suffix
        context = {
            **recipient,
            # Merge tags cannot name underscore keys: this one is for the mailto: header only.
            "_unsubscribe_token": token,
            "unsubscribe_url": unsubscribe,
            "preferences_url": (
                self.preferences_prefix
                + recipient_token(PREFERENCES, subscriber_id=subscriber_id, delivery_id=delivery_id)
                + self.preferences_suffix
            ),
            "view_in_browser_url": "",
            **self.company,
        }
        if self.compiled.links:
            context["link_urls"] = (
                self.tracking.for_delivery(delivery_id or 0)
                if self.tracking and delivery_id
                else self.untracked_links
            )
        return context

    def build(self, *, delivery_id, subscriber_id, email, recipient: Mapping) -> BuiltMessage:
        """One recipient's message to ``email`` (the delivery's address), filled from the
        ``recipient`` merge values (see ``context``)."""
        context = self.context(
            delivery_id=delivery_id, subscriber_id=subscriber_id, recipient=recipient
        )
        rendered = self.compiled.render(context)
        subject = self.subject_plan.render(context)
        html = rendered.html
        extra = ""
        if not self.has_footer:
            extra = self.footer_html.render(context, escape=True)
        if self.pixel and self.campaign.track_opens and delivery_id:
            extra += f'<img src="{self.pixel.open_url(delivery_id)}" width="1" height="1" alt="">'
        if extra:
            html = _insert_before_body_end(html, extra)
        text = (
            rendered.text
            if self.text_has_footer
            else rendered.text + self.footer_text.render(context)
        )
        message_id = (
            f"<d{delivery_id}.c{self.campaign.pk}.{self.id_tag}@{self.domain}>"
            if delivery_id
            else f"<test.{uuid.uuid4().hex}.c{self.campaign.pk}@{self.domain}>"
        )
        headers = {
            "Message-ID": message_id,
            # The token rides in the mailto subject; the inbound handler (preferences.inbound)
            # falls back to the sender's address when a mail client drops it.
            "List-Unsubscribe": (
                f"<{context['unsubscribe_url']}>, "
                f"<mailto:{self.mailto}?subject=unsubscribe%20{context['_unsubscribe_token']}>"
            ),
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            "List-Id": self.list_id_header,
            "Feedback-ID": self.feedback_id,
        }
        if delivery_id:
            headers["X-NFM-Delivery"] = str(delivery_id)
        return BuiltMessage(email, subject, html, text, message_id, headers, delivery_id)

    def _now_header(self) -> str:
        second = int(time.time())
        if self._date[1] != second:
            self._date = (formatdate(second, usegmt=True), second)
        return self._date[0]

    def raw(self, message: BuiltMessage) -> bytes:
        b = self.boundary
        head = (
            f"To: {message.to}\r\n"
            f"Subject: {_encode_header(message.subject)}\r\n"
            f"Date: {self._now_header()}\r\n"
            f"Message-ID: {message.message_id}\r\n"
            f"List-Unsubscribe: {message.headers['List-Unsubscribe']}\r\n"
            + (f"X-NFM-Delivery: {message.delivery_id}\r\n" if message.delivery_id else "")
        ).encode()
        part = (
            "Content-Type: text/{};charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable"
            "\r\n\r\n"
        )
        return b"".join(
            [
                self.common_headers,
                head,
                f"\r\n--{b}\r\n{part.format('plain')}".encode(),
                _qp(message.text),
                f"\r\n--{b}\r\n{part.format('html')}".encode(),
                _qp(message.html),
                f"\r\n--{b}--\r\n".encode(),
            ]
        )

    @property
    def signers(self) -> list[dkim.Signer]:
        """The From domain's active DKIM keys, read and decrypted once per campaign."""
        if self._signers is None:
            self._signers = signers_for(self.from_email)
        return self._signers

    def envelope_sender(self, message: BuiltMessage) -> str:
        """MAIL FROM: a VERP address naming the delivery when a bounce domain is set (the
        connection's ``bounce_domain`` option, else BOUNCE_DOMAIN), so DSNs come back to the
        bounce mailbox saying whose message it was; else the From address."""
        if self.bounce_domain and message.delivery_id:
            return verp_address(message.delivery_id, self.bounce_domain)
        return self.from_email

    def signed_raw(self, message: BuiltMessage) -> bytes:
        """``raw()`` with the From domain's DKIM signatures on top (SMTP and the sandbox;
        ESPs sign for themselves)."""
        return dkim.sign(self.raw(message), self.signers)

    def email_message(
        self, message: BuiltMessage, connection: BaseEmailBackend | None = None
    ) -> EmailMultiAlternatives:
        headers = dict(message.headers)
        # anymail's message class: an EmailMultiAlternatives with its ESP options declared.
        email = AnymailMessage(
            subject=message.subject,
            body=message.text,
            from_email=self.from_header,
            to=[message.to],
            reply_to=[self.campaign.reply_to] if self.campaign.reply_to else None,
            headers=headers,
            connection=connection,
        )
        email.attach_alternative(message.html, "text/html")
        # anymail: webhooks find the delivery by this metadata; we track clicks ourselves.
        email.metadata = {"delivery_id": message.delivery_id, "campaign_id": self.campaign.pk}
        email.tags = [str(t) for t in self.campaign.tags]
        email.track_clicks = False
        email.track_opens = False
        extra = bulk_stream(self.campaign.connection)
        if extra:
            email.esp_extra = extra
        return email


def _url_around(name: str) -> tuple[str, str]:
    marker = "TOKENPLACEHOLDER"
    url = settings.SITE_URL + reverse(name, args=[marker])
    prefix, _, suffix = url.partition(marker)
    return prefix, suffix


def bulk_stream(connection) -> dict:
    """anymail ``esp_extra`` that puts campaign mail on the ESP's broadcast stream, apart
    from transactional mail (whose reputation it must not drag down)."""
    if connection is None:
        return {}
    backend = connection.backend.lower()
    options = connection.options or {}
    if ".postmark." in backend:
        return {"MessageStream": options.get("message_stream") or "broadcast"}
    if ".sparkpost." in backend:
        return {"options": {"transactional": False}}
    return {}


def message_id_tag(campaign: Campaign) -> str:
    """Keyed by this install's secret and the campaign's creation time: Message-IDs do not
    repeat across installs, nor after a database reset starts the ids from 1 again."""
    created = campaign.created_at.isoformat() if campaign.created_at else ""
    return hmac.new(
        settings.SECRET_KEY.encode(), f"{campaign.pk}:{created}".encode(), hashlib.sha256
    ).hexdigest()[:10]


def list_id(campaign: Campaign, domain: str) -> str:
    """RFC 2919 List-Id, stable per list: the campaign's topics (a recurring campaign and
    every one-off to the same topic share it), else its segment, else the whole audience;
    never the internal campaign name. The label is ASCII; the description is encoded."""
    topics = (
        sorted(campaign.topics.values_list("slug", "public_name", "name")) if campaign.pk else []
    )
    if topics:
        label = "-".join(slug for slug, _, _ in topics)[:60].strip("-") + ".topics"
        description = ", ".join(public or name for _, public, name in topics)
    elif campaign.segment is not None:
        label = f"segment-{campaign.segment_id}.segments"
        description = campaign.segment.name
    else:
        label, description = "all", "Newsletter"
    description = description.replace('"', "'").replace("\\", "/")[:60]
    if description.isascii():
        phrase = f'"{description}"'
    else:  # encoded words on one line: this header also goes to ESPs, which refuse newlines
        phrase = Header(description, "utf-8").encode(linesep=" ")
    return f"{phrase} <{label}.{domain}>"


def _insert_before_body_end(html: str, snippet: str) -> str:
    index = html.rfind("</body>")
    if index == -1:
        index = html.rfind("</BODY>")
    if index == -1:
        return html + snippet
    return html[:index] + snippet + html[index:]
