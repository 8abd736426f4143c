"""The public side for recipients: preference center, one-click unsubscribe, exit survey.

No login: every URL carries a signed token. Link scanners fetch every GET in an email, so a
GET only ever shows a page; each change is a POST. The one-click URL takes RFC 8058 POSTs with
no cookie and no CSRF token: the signed token is its protection.
"""

import json

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from core.recipient_links import (
    PREFERENCES,
    UNSUBSCRIBE,
    preferences_path,
    read_recipient_token,
    recipient_token,
)
from core.tokens import BadToken
from subscribers import services as subscriber_services
from subscribers.models import Subscriber, Subscription, Topic

from . import selectors, services
from .forms import ExitSurveyForm, FrequencyForm, PauseForm, ProfileForm, TopicsForm


class _BadLink(Exception):
    pass


def _recipient(purpose: str, token: str) -> tuple[Subscriber, int | None]:
    try:
        subscriber_id, delivery_id = read_recipient_token(purpose, token)
    except BadToken as exc:
        raise _BadLink from exc
    subscriber = Subscriber.objects.filter(pk=subscriber_id).first()
    if subscriber is None or subscriber.erased_at is not None:
        raise _BadLink
    return subscriber, delivery_id


def _bad_link(request) -> HttpResponse:
    return render(request, "preferences/bad_link.html", status=400)


def _client_ip(request) -> str | None:
    return request.META.get("REMOTE_ADDR")


def public_view(purpose: str):
    """Resolve the token to a subscriber (or show the bad-link page) and speak their language."""

    def decorator(view):
        def wrapped(request, token, *args, **kwargs):
            try:
                subscriber, delivery_id = _recipient(purpose, token)
            except _BadLink:
                return _bad_link(request)
            with translation.override(subscriber.language or "en"):
                response = view(request, token, subscriber, delivery_id, *args, **kwargs)
                response.headers.setdefault("Content-Language", translation.get_language())
            response.headers["X-Robots-Tag"] = "noindex"
            # The URL holds the recipient's token: never send it to another site. (Not
            # "no-referrer": browsers then post forms with "Origin: null", which CSRF refuses.)
            response.headers["Referrer-Policy"] = "same-origin"
            return response

        wrapped.__name__ = view.__name__
        wrapped.__doc__ = view.__doc__
        return wrapped

    return decorator


def _center_context(subscriber: Subscriber, token: str, delivery_id: int | None) -> dict:
    active_topics = set(
        Subscription.objects.filter(
            subscriber=subscriber, status=Subscription.Status.ACTIVE
        ).values_list("topic_id", flat=True)
    )
    editable = selectors.editable_fields()
    return {
        "subscriber": subscriber,
        "token": token,
        "topics": Topic.objects.all(),
        "active_topics": active_topics,
        "frequency_form": FrequencyForm(
            initial={"per_month": subscriber.max_campaigns_per_month or ""}
        ),
        "profile_form": ProfileForm(
            editable_fields=editable,
            initial={
                "first_name": subscriber.first_name,
                "last_name": subscriber.last_name,
                "language": subscriber.language,
                **{f"attr_{f.key}": subscriber.attributes.get(f.key) for f in editable},
            },
        ),
        "is_paused": selectors.is_paused(subscriber),
        "unsubscribe_path": reverse(
            "preferences:unsubscribe",
            args=[
                recipient_token(UNSUBSCRIBE, subscriber_id=subscriber.pk, delivery_id=delivery_id)
            ],
        ),
    }


@never_cache
@require_GET
@public_view(PREFERENCES)
def center(request, token, subscriber, delivery_id):
    return render(
        request, "preferences/center.html", _center_context(subscriber, token, delivery_id)
    )


def _back(token: str):
    return redirect("preferences:center", token=token)


@require_POST
@public_view(PREFERENCES)
def topics(request, token, subscriber, delivery_id):
    form = TopicsForm(request.POST)
    if form.is_valid():
        services.preferences_set_topics(
            subscriber=subscriber,
            topic_ids={t.pk for t in form.cleaned_data["topics"]},
            delivery_id=delivery_id,
        )
        messages.success(request, _("Your topics are saved."))
    return _back(token)


@require_POST
@public_view(PREFERENCES)
def frequency(request, token, subscriber, delivery_id):
    form = FrequencyForm(request.POST)
    if form.is_valid():
        services.subscriber_set_frequency(
            subscriber=subscriber, per_month=form.cleaned_data["per_month"]
        )
        messages.success(request, _("How often we write is saved."))
    return _back(token)


@require_POST
@public_view(PREFERENCES)
def pause(request, token, subscriber, delivery_id):
    if request.POST.get("resume"):
        services.subscriber_resume(subscriber=subscriber, delivery_id=delivery_id)
        messages.success(request, _("Emails are back on."))
        return _back(token)
    form = PauseForm(request.POST)
    if form.is_valid():
        services.subscriber_pause(
            subscriber=subscriber, months=form.cleaned_data["months"], delivery_id=delivery_id
        )
        messages.success(
            request,
            _("All email is paused until %(date)s.")
            % {"date": selectors.paused_until_display(subscriber)},
        )
    return _back(token)


@require_POST
@public_view(PREFERENCES)
def profile(request, token, subscriber, delivery_id):
    form = ProfileForm(request.POST, editable_fields=selectors.editable_fields())
    if not form.is_valid():
        context = _center_context(subscriber, token, delivery_id)
        context["profile_form"] = form
        return render(request, "preferences/center.html", context, status=400)
    services.subscriber_update_profile(
        subscriber=subscriber,
        first_name=form.cleaned_data["first_name"],
        last_name=form.cleaned_data["last_name"],
        language=form.cleaned_data["language"],
        attributes=form.attributes(),
    )
    with translation.override(subscriber.language):
        messages.success(request, _("Your details are saved."))
    return _back(token)


@require_POST
@public_view(PREFERENCES)
def export(request, token, subscriber, delivery_id):
    data = subscriber_services.subscriber_export(subscriber=subscriber)
    response = HttpResponse(
        json.dumps(data, indent=2, default=str, ensure_ascii=False),
        content_type="application/json; charset=utf-8",
    )
    response["Content-Disposition"] = 'attachment; filename="my-data.json"'
    return response


@never_cache
@require_http_methods(["GET", "POST"])
@public_view(PREFERENCES)
def erase(request, token, subscriber, delivery_id):
    """GET asks for confirmation; only the POST erases."""
    if request.method == "GET":
        return render(
            request, "preferences/erase_confirm.html", {"token": token, "subscriber": subscriber}
        )
    subscriber_services.subscriber_erase(subscriber=subscriber)
    return render(request, "preferences/erased.html")


@require_POST
@public_view(PREFERENCES)
def resubscribe(request, token, subscriber, delivery_id):
    _resubscribe(request, subscriber, delivery_id, how="preferences")
    messages.success(request, _("Welcome back! You are subscribed again."))
    return _back(token)


def _resubscribe(request, subscriber: Subscriber, delivery_id: int | None, *, how: str) -> None:
    services.subscriber_resubscribe(
        subscriber=subscriber,
        delivery_id=delivery_id,
        how=how,
        ip=_client_ip(request),
        user_agent=request.headers.get("User-Agent", "")[:500],
        consent_text=_("I want to receive emails again (re-subscribed from the preference page)."),
    )


@never_cache
@csrf_exempt
@require_http_methods(["GET", "POST"])
@public_view(UNSUBSCRIBE)
def unsubscribe(request, token, subscriber, delivery_id):
    """The List-Unsubscribe URL.

    A POST whose body is ``List-Unsubscribe=One-Click`` (RFC 8058, sent by the mailbox
    provider) unsubscribes and answers 200 with no redirect. The button on the GET page posts
    here too and then continues to the exit survey. A GET changes nothing.
    """
    if request.method == "GET":
        return render(
            request,
            "preferences/unsubscribe.html",
            {
                "subscriber": subscriber,
                "token": token,
                "preferences_url": preferences_path(
                    subscriber_id=subscriber.pk, delivery_id=delivery_id
                ),
            },
        )
    one_click = request.POST.get("List-Unsubscribe") == "One-Click"
    services.subscriber_leave(
        subscriber=subscriber,
        source="one_click" if one_click else "unsubscribe_page",
        delivery_id=delivery_id,
    )
    if one_click:
        return HttpResponse(_("You are unsubscribed."), content_type="text/plain; charset=utf-8")
    return redirect("preferences:survey", token=token)


@never_cache
@require_http_methods(["GET", "POST"])
@public_view(UNSUBSCRIBE)
def survey(request, token, subscriber, delivery_id):
    """After leaving: alternatives first, then optional reasons."""
    language = translation.get_language()
    if request.method == "POST":
        form = ExitSurveyForm(request.POST, language=language)
        if form.is_valid():
            services.exit_survey_answer(
                subscriber=subscriber,
                campaign_id=selectors.campaign_for_delivery(delivery_id),
                reasons=form.cleaned_data["reasons"],
                other_text=form.cleaned_data["other_text"],
                language=language,
            )
            return redirect("preferences:done", token=token)
    else:
        form = ExitSurveyForm(language=language)
    return render(
        request,
        "preferences/survey.html",
        {
            "form": form,
            "token": token,
            "subscriber": subscriber,
            "frequency_choices": services.FREQUENCY_CHOICES,
        },
    )


@require_POST
@public_view(UNSUBSCRIBE)
def stay(request, token, subscriber, delivery_id):
    """The alternatives to leaving: fewer emails, or choose topics in the preference center."""
    choice = request.POST.get("choice")
    _resubscribe(request, subscriber, delivery_id, how="exit_survey")
    center = preferences_path(subscriber_id=subscriber.pk, delivery_id=delivery_id)
    if choice == "less":
        per_month = int(request.POST.get("per_month") or 1)
        if per_month not in services.FREQUENCY_CHOICES:
            per_month = 1
        services.subscriber_set_frequency(subscriber=subscriber, per_month=per_month)
        messages.success(
            request,
            _("You are still subscribed, with at most %(n)s emails a month.") % {"n": per_month},
        )
    else:
        messages.success(request, _("You are still subscribed: choose your topics below."))
    return redirect(center)


@never_cache
@require_GET
@public_view(UNSUBSCRIBE)
def done(request, token, subscriber, delivery_id):
    return render(request, "preferences/done.html", {"token": token, "subscriber": subscriber})


@require_POST
@public_view(UNSUBSCRIBE)
def come_back(request, token, subscriber, delivery_id):
    _resubscribe(request, subscriber, delivery_id, how="exit_survey")
    messages.success(request, _("Welcome back! You are subscribed again."))
    return redirect(preferences_path(subscriber_id=subscriber.pk, delivery_id=delivery_id))
