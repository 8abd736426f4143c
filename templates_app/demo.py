# ruff: noqa: RUF001, E501  (French typography, and email HTML kept on one line as written)
"""Demo content: the responsive layout, three newsletter starters and six canned replies in
English and French. Idempotent (looked up by name) and fast."""

import io

from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image as PILImage
from PIL import ImageDraw

from .models import Image, Layout, Template
from .services import image_upload, template_create

LAYOUT_NAME = "Responsive single column"

# Mobile-first: one fluid column capped at 600 px (a ghost table holds Outlook to 600 px),
# images scale down, long words wrap, and a dark palette for clients that honour
# prefers-color-scheme. premailer inlines the plain rules; the media queries stay in <style>.
LAYOUT_HTML = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="x-apple-disable-message-reformatting">
<meta name="color-scheme" content="light dark">
<meta name="supported-color-schemes" content="light dark">
<title>{{ subject }}</title>
<style>
body { margin: 0; padding: 0; background: #f3f4f6; -webkit-text-size-adjust: 100%; }
.wrapper { width: 100%; background: #f3f4f6; }
.container { width: 100%; max-width: 600px; margin: 0 auto; background: #ffffff; }
.content { text-align: left; padding: 24px 20px; font-family: Arial, Helvetica, sans-serif; font-size: 16px;
  line-height: 1.6; color: #1f2937; overflow-wrap: break-word; word-wrap: break-word; }
.content img { max-width: 100%; height: auto; border: 0; }
h1 { font-size: 26px; line-height: 1.25; margin: 0 0 16px; }
h2 { font-size: 20px; line-height: 1.3; margin: 24px 0 8px; }
a { color: #1d4ed8; }
.btn { display: inline-block; background: #1d4ed8; color: #ffffff; text-decoration: none;
  padding: 12px 22px; border-radius: 6px; font-weight: bold; }
.muted { color: #6b7280; font-size: 14px; }
.footer { padding: 20px; font-family: Arial, Helvetica, sans-serif; font-size: 13px;
  line-height: 1.5; color: #6b7280; text-align: center; }
.footer a { color: #4b5563; }
@media (prefers-color-scheme: dark) {
  body, .wrapper { background: #111827 !important; }
  .container { background: #1f2937 !important; }
  .content, h1, h2 { color: #f3f4f6 !important; }
  a { color: #93c5fd !important; }
  .footer, .footer a, .muted { color: #9ca3af !important; }
}
</style>
</head>
<body>
{{ preheader }}
<table role="presentation" class="wrapper" width="100%" cellpadding="0" cellspacing="0">
<tr><td align="center">
<!--[if mso]><table role="presentation" width="600" cellpadding="0" cellspacing="0"><tr><td><![endif]-->
<div class="container">
<div class="content">{{ content }}</div>
<div class="footer">
<p><a href="{{ view_in_browser_url }}">View this email in your browser</a></p>
<p>{{ company_name }}<br>{{ company_postal_address }}</p>
<p>You receive this email because you subscribed to our news.<br>
<a href="{{ preferences_url }}">Manage your preferences</a> ·
<a href="{{ unsubscribe_url }}">Unsubscribe</a></p>
</div>
</div>
<!--[if mso]></td></tr></table><![endif]-->
</td></tr>
</table>
</body>
</html>
"""

HERO_ALT = "Our new dashboard on a laptop screen"

STARTERS = [
    {
        "name": "Starter: plain letter",
        "subject": "A note from the team",
        "preheader": "What we learned this month, in five minutes of reading",
        "html_body": """<p>Hello {{ first_name|default:"there" }},</p>
<p>Once a month we write to you the way we would write to a friend: no banners, no
countdowns, just what happened and what we are working on next.</p>
<p>This month we spent most of our time listening. Forty of you answered our survey, and the
message was clear: fewer emails, but more useful ones. So from now on this letter arrives on
the first Tuesday of the month, and nothing else does unless you ask for it.</p>
<p>If you would rather hear from us less, or about specific topics only, you can say so on
<a href="{{ preferences_url }}">your preferences page</a>.</p>
<p>Thank you for reading,<br>The {{ company_name }} team</p>""",
    },
    {
        "name": "Starter: announcement with hero image",
        "subject": "It is here: the new dashboard",
        "preheader": "Faster reports, dark mode and a cleaner home screen",
        "html_body": """<p><img src="{hero_url}" alt="{hero_alt}" width="600"
style="display:block;width:100%;max-width:600px;height:auto;border-radius:8px;"></p>
<h1>The new dashboard is live</h1>
<p>Hello {{ first_name|default:"there" }}, the dashboard you asked for is ready for
{{ attr.company|default:"your team" }}: reports load in under a second, every chart
works in dark mode, and the home screen shows only what changed since your last visit.</p>
<p style="text-align:center;margin:28px 0;">
<!--[if mso]><v:roundrect xmlns:v="urn:schemas-microsoft-com:vml" href="https://example.com/dashboard" style="height:44px;width:220px;" arcsize="12%" fillcolor="#1d4ed8" stroke="f"><center style="color:#ffffff;font-weight:bold;">Open the dashboard</center></v:roundrect><![endif]-->
<!--[if !mso]><!--><a class="btn" href="https://example.com/dashboard">Open the dashboard</a><!--<![endif]-->
</p>
<p class="muted">Questions? Reply to this email: a person reads every answer.</p>""",
    },
    {
        "name": "Starter: digest of articles",
        "subject": "This week: three reads worth your time",
        "preheader": "Onboarding checklists, cleaner lists and a case study",
        "html_body": """<h1>The weekly digest</h1>
<p>Hello {{ first_name|default:"there" }}, here is what we published this week.</p>
<h2><a href="https://example.com/blog/onboarding-checklist">The ten-minute onboarding checklist</a></h2>
<p>A first week that keeps new customers: what to send, when, and what to leave out.</p>
<h2><a href="https://example.com/blog/clean-lists">Why a smaller list sends better</a></h2>
<p>Removing inactive addresses raised our open rate by a third. Here is the method.</p>
<h2><a href="https://example.com/blog/case-study-bakery">Case study: a bakery that emails weekly</a></h2>
<p>How a neighbourhood shop turned a Friday email into its busiest Saturday.</p>
<p class="muted">Forwarded this email? <a href="https://example.com/subscribe">Subscribe here</a>.</p>""",
    },
]

# (name, subject, body) in English then French. Ad-hoc fields ({{ topic }} ...) are filled by
# the sender in the "reply with a template" form.
CANNED_REPLIES = {
    "en": [
        (
            "Question received, answer coming",
            "Re: {{ topic }}",
            """<p>Hello {{ first_name|default:"there" }},</p>
<p>Thank you for your question about {{ topic }}. I want to give you a complete answer rather
than a quick guess, so I am checking the details with the team.</p>
<p>You will have a full reply from me by {{ answer_date }} at the latest.</p>
<p>Best regards,<br>{{ sender_name }}</p>""",
        ),
        (
            "Critical feedback: let us talk",
            "Your feedback about {{ topic }}",
            """<p>Hello {{ first_name|default:"there" }},</p>
<p>Thank you for telling us plainly what went wrong with {{ topic }}. You are right that this
is not the experience we want to give, and I would rather understand it properly than answer
with a form letter.</p>
<p>Could we talk for twenty minutes? You can pick a time that suits you here:
{{ booking_link }}.</p>
<p>In the meantime, I have shared your message with the people who can fix it.</p>
<p>Sincerely,<br>{{ sender_name }}</p>""",
        ),
        (
            "Declining an offer politely",
            "Re: {{ topic }}",
            """<p>Hello {{ first_name|default:"there" }},</p>
<p>Thank you for thinking of us for {{ topic }}. We have looked at it carefully, and it is
not something we can take on at the moment.</p>
<p>{{ referral_name }} may be able to help: you can reach them at {{ referral_contact }}.</p>
<p>I hope our paths cross again soon.</p>
<p>Kind regards,<br>{{ sender_name }}</p>""",
        ),
        (
            "Out of office",
            "Away until {{ return_date }}",
            """<p>Hello,</p>
<p>Thank you for your message. I am away until {{ return_date }} and will read it when I am
back.</p>
<p>If it cannot wait, please write to {{ backup_contact }}, who is looking after my
requests in the meantime.</p>
<p>Best regards,<br>{{ sender_name }}</p>""",
        ),
        (
            "Thanks for signing up",
            'Welcome aboard, {{ first_name|default:"and thank you" }}',
            """<p>Hello {{ first_name|default:"there" }},</p>
<p>Thank you for signing up. I am {{ sender_name }}, and I will be your contact here.</p>
<p>The best place to start is {{ getting_started_link }}: it takes about ten minutes and
covers what most people need in their first week.</p>
<p>If anything is unclear, just reply to this email.</p>
<p>Welcome,<br>{{ sender_name }}</p>""",
        ),
        (
            "Follow-up after no answer",
            "Following up on {{ topic }}",
            """<p>Hello {{ first_name|default:"there" }},</p>
<p>I wrote to you on {{ previous_date }} about {{ topic }} and wanted to make sure my message
did not get lost.</p>
<p>If now is not a good time, no problem: a one-line reply is enough and I will not follow up
again.</p>
<p>Best regards,<br>{{ sender_name }}</p>""",
        ),
    ],
    "fr": [
        (
            "Question reçue, réponse à venir",
            "Re : {{ topic }}",
            """<p>Bonjour {{ first_name|default:"à vous" }},</p>
<p>Merci pour votre question au sujet de {{ topic }}. Je préfère vous donner une réponse
complète plutôt qu’une approximation : je vérifie donc les détails avec l’équipe.</p>
<p>Vous aurez une réponse complète de ma part au plus tard le {{ answer_date }}.</p>
<p>Bien cordialement,<br>{{ sender_name }}</p>""",
        ),
        (
            "Retour critique : parlons-en",
            "Votre retour sur {{ topic }}",
            """<p>Bonjour {{ first_name|default:"à vous" }},</p>
<p>Merci de nous avoir dit franchement ce qui n’a pas fonctionné avec {{ topic }}. Vous avez
raison : ce n’est pas l’expérience que nous voulons offrir, et je préfère bien comprendre
plutôt que vous répondre par un message type.</p>
<p>Pourrions-nous en parler vingt minutes ? Vous pouvez choisir un créneau ici :
{{ booking_link }}.</p>
<p>En attendant, j’ai transmis votre message aux personnes qui peuvent corriger le problème.</p>
<p>Sincèrement,<br>{{ sender_name }}</p>""",
        ),
        (
            "Décliner une offre avec courtoisie",
            "Re : {{ topic }}",
            """<p>Bonjour {{ first_name|default:"à vous" }},</p>
<p>Merci d’avoir pensé à nous pour {{ topic }}. Nous avons étudié votre proposition avec
attention, mais nous ne pouvons pas y donner suite pour le moment.</p>
<p>{{ referral_name }} pourra sans doute vous aider : vous pouvez le ou la joindre à
{{ referral_contact }}.</p>
<p>Au plaisir de croiser à nouveau votre route,<br>{{ sender_name }}</p>""",
        ),
        (
            "Absence du bureau",
            "Absent·e jusqu’au {{ return_date }}",
            """<p>Bonjour,</p>
<p>Merci pour votre message. Je suis absent·e jusqu’au {{ return_date }} et le lirai à mon
retour.</p>
<p>Si votre demande ne peut pas attendre, écrivez à {{ backup_contact }}, qui suit mes
dossiers pendant mon absence.</p>
<p>Bien cordialement,<br>{{ sender_name }}</p>""",
        ),
        (
            "Merci pour votre inscription",
            "Bienvenue, et merci !",
            """<p>Bonjour {{ first_name|default:"à vous" }},</p>
<p>Merci pour votre inscription. Je suis {{ sender_name }} et je serai votre interlocuteur
ou interlocutrice.</p>
<p>Le meilleur point de départ est {{ getting_started_link }} : une dizaine de minutes
suffisent pour découvrir l’essentiel de la première semaine.</p>
<p>Si quelque chose n’est pas clair, répondez simplement à cet e-mail.</p>
<p>Bienvenue,<br>{{ sender_name }}</p>""",
        ),
        (
            "Relance après une absence de réponse",
            "Suite à mon message sur {{ topic }}",
            """<p>Bonjour {{ first_name|default:"à vous" }},</p>
<p>Je vous ai écrit le {{ previous_date }} au sujet de {{ topic }} et je voulais m’assurer que
mon message ne s’était pas perdu.</p>
<p>Si le moment n’est pas idéal, aucun souci : une réponse d’une ligne suffit et je ne vous
relancerai plus.</p>
<p>Bien cordialement,<br>{{ sender_name }}</p>""",
        ),
    ],
}


def _hero_image() -> Image:
    existing = Image.objects.filter(alt_text=HERO_ALT).first()
    if existing:
        return existing
    canvas = PILImage.new("RGB", (1200, 600), (29, 78, 216))
    draw = ImageDraw.Draw(canvas)
    for i in range(0, 600, 6):
        draw.line([(0, i), (1200, i)], fill=(29 + i // 12, 78 + i // 20, 216))
    draw.rounded_rectangle([(250, 120), (950, 480)], radius=24, fill=(243, 244, 246))
    draw.rectangle([(290, 170), (910, 200)], fill=(29, 78, 216))
    for row, width in enumerate((520, 380, 600, 300)):
        draw.rectangle([(290, 240 + row * 50), (290 + width, 262 + row * 50)], fill=(156, 163, 175))
    out = io.BytesIO()
    canvas.save(out, "PNG")
    upload = SimpleUploadedFile("hero.png", out.getvalue(), content_type="image/png")
    return image_upload(upload=upload, alt_text=HERO_ALT)


def starter_bodies(hero_url: str) -> list[dict]:
    """The starters with the hero image URL filled in (used by load() and by the tests)."""
    return [
        {
            **starter,
            "html_body": starter["html_body"]
            .replace("{hero_url}", hero_url)
            .replace("{hero_alt}", HERO_ALT),
        }
        for starter in STARTERS
    ]


def load(stdout=None) -> None:
    layout, _ = Layout.objects.get_or_create(name=LAYOUT_NAME, defaults={"html": LAYOUT_HTML})
    created = 0
    existing = set(Template.objects.values_list("name", "language"))
    hero = _hero_image()
    for starter in starter_bodies(hero.absolute_url):
        if (starter["name"], "en") in existing:
            continue
        template_create(kind=Template.Kind.NEWSLETTER, layout=layout, tags=["starter"], **starter)
        created += 1
    for language, replies in CANNED_REPLIES.items():
        for name, subject, body in replies:
            if (name, language) in existing:
                continue
            template_create(
                kind=Template.Kind.CANNED_REPLY,
                name=name,
                language=language,
                subject=subject,
                html_body=body,
                tags=["canned reply", language],
            )
            created += 1
    if stdout is not None:
        stdout.write(f"templates: {created} templates created (layout: {layout.name})")
