"""The visitor's side: hosted page, iframe, embed configuration, cross-origin submit, opt-in
confirmation and lead-magnet download. No login; signed tokens everywhere.

The submit endpoint takes cross-site posts from the embed script on other origins, where our
CSRF cookie would be a third-party cookie (blocked): it is csrf_exempt and checks a signed,
timestamped form token instead, plus the form's origin allow-list (CORS).
"""

from typing import Any
from urllib.parse import parse_qs, urlsplit

from django.conf import settings
from django.db.models import prefetch_related_objects
from django.http import FileResponse, Http404, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.clickjacking import xframe_options_exempt
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods

from core.tokens import BadToken, read_token

from . import services
from .emails import CONFIRM_TOKEN, DOWNLOAD_TOKEN, download_url
from .models import LeadMagnet, Signup, SignupForm
from .protection import (
    HONEYPOT_FIELD,
    client_ip,
    form_token_make,
)
from .schema import UTM_KEYS, consent_notice, form_layout, texts, theme_for_display


def _form(public_id: str) -> SignupForm:
    # Every public request starts here: a raw query skips the ORM's SQL compilation (a third of
    # this lookup's cost); the topics come in one more query for the layout and the signup.
    form = next(
        iter(
            SignupForm.objects.raw(
                "SELECT * FROM signup_signupform WHERE public_id = %s AND is_active",
                [public_id],
            )
        ),
        None,
    )
    if form is None:
        raise Http404("No such form.")
    prefetch_related_objects([form], "topics")
    return form


def _own_origin(request) -> str:
    return f"{request.scheme}://{request.get_host()}"


def _origin_ok(request, form: SignupForm, origin: str) -> bool:
    return origin == _own_origin(request) or form.origin_allowed(origin)


def _cross_origin(request, form: SignupForm, *, refusal: str) -> tuple[str, HttpResponse | None]:
    """The request's Origin, and the answer when there is nothing more to do: a refusal for a
    site the form does not allow, or the answer to a CORS preflight."""
    origin = request.headers.get("Origin", "")
    if origin and not _origin_ok(request, form, origin):
        return origin, JsonResponse({"ok": False, "error": refusal}, status=403)
    if request.method == "OPTIONS":
        return origin, _cors(HttpResponse(status=204), origin)
    return origin, None


def _cors(response, origin: str):
    if origin:
        response["Access-Control-Allow-Origin"] = origin
        response["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
        response["Access-Control-Allow-Headers"] = "Content-Type"
        response["Access-Control-Max-Age"] = "600"
    response["Vary"] = "Origin"
    return response


def _frame_policy(response, form: SignupForm):
    """Only the allow-listed sites may frame the form (CSP frame-ancestors)."""
    ancestors = ["*"] if "*" in form.origins else ["'self'", *form.origins]
    # The rest of the page's policy stays as the CSP middleware writes it.
    response._csp_replace = {"frame-ancestors": ancestors}
    return response


def _origin_of_page(page: str, query=None) -> services.Origin:
    """Source page and UTM parameters from the page URL (or the given query)."""
    page = (page or "")[:500]
    params = parse_qs(urlsplit(page).query) if page else {}
    values = {key: (params.get(key) or [""])[0][:100] for key in UTM_KEYS}
    if query is not None:
        for key in UTM_KEYS:
            values[key] = values[key] or (query.get(key) or "")[:100]
    # Keep the page without its query string: stats group by page, UTM is kept apart.
    bare = page.split("?", 1)[0].split("#", 1)[0]
    return services.Origin(page=bare, **values)


def _protection(form: SignupForm, *, token: str | None = None) -> dict:
    """What a visitor's browser needs to pass the form's protections: a form token (a fresh
    one unless given), the proof-of-work difficulty, the honeypot's name."""
    return {
        "token": token or form_token_make(form.pk),
        "pow_bits": settings.SIGNUP_POW_BITS if form.proof_of_work else 0,
        "honeypot": HONEYPOT_FIELD,
    }


def _context(request, form: SignupForm, *, step: int = 0, **extra) -> dict:
    layout = form_layout(form)
    words = texts(form.language)
    return {
        "form": form,
        "layout": layout,
        "step": step,
        "fields": layout[step]["fields"],
        "step_title": layout[step]["title"],
        "total": len(layout),
        "step_label": words["step"].format(n=step + 1, total=len(layout)),
        "is_last": step == len(layout) - 1,
        "words": words,
        "theme": theme_for_display(form.theme),
        **_protection(form, token=extra.pop("token", None)),
        "submit_url": reverse("signup:submit", args=[form.public_id]),
        "consent_notice": consent_notice(form) if step == 0 else "",
        "errors": {},
        "values": {},
        **extra,
    }


@require_GET
@never_cache
def hosted_page(request, public_id):
    form = _form(public_id)
    origin = _origin_of_page(request.META.get("HTTP_REFERER", ""), request.GET)
    services.form_view_count(form=form, origin=origin)
    context = _context(request, form, mode="page", page=origin.page)
    return render(request, "signup/public/form_page.html", context)


@require_GET
@never_cache
@xframe_options_exempt
def frame(request, public_id):
    """The iframe fallback for sites that cannot run our script."""
    form = _form(public_id)
    origin = _origin_of_page(request.GET.get("page") or request.META.get("HTTP_REFERER", ""))
    services.form_view_count(form=form, origin=origin)
    context = _context(request, form, mode="frame", page=origin.page)
    return _frame_policy(render(request, "signup/public/form_page.html", context), form)


@csrf_exempt
@require_http_methods(["GET", "OPTIONS"])
@never_cache
def config(request, public_id):
    """What the embed script renders: steps, fields, labels, theme, and a fresh form token."""
    form = _form(public_id)
    origin, early = _cross_origin(request, form, refusal="This site may not show this form.")
    if early is not None:
        return early
    services.form_view_count(form=form, origin=_origin_of_page(request.GET.get("page", "")))
    words = texts(form.language)
    layout = form_layout(form)
    theme = theme_for_display(form.theme)
    data = {
        "form": form.public_id,
        "language": form.language,
        "steps": [
            {"title": step["title"], "fields": [f.public() for f in step["fields"]]}
            for step in layout
        ],
        "theme": theme,
        "texts": {
            "button": theme["button_text"] or words["button"],
            "next": words["next"],
            "step": words["step"],
            "checking": words["checking"],
            "download": words["download"],
            "network": words["network"],
        },
        **_protection(form),
        "consent_notice": consent_notice(form),
        "submit_url": request.build_absolute_uri(reverse("signup:submit", args=[public_id])),
    }
    return _cors(JsonResponse(data), origin)


@csrf_exempt
@require_http_methods(["POST", "OPTIONS"])
@never_cache
def submit(request, public_id):
    form = _form(public_id)
    origin, early = _cross_origin(request, form, refusal="This site may not use this form.")
    if early is not None:
        return early
    as_json = request.POST.get("format") == "json"
    mode = "frame" if request.POST.get("mode") == "frame" else "page"
    words = texts(form.language)
    layout = form_layout(form)
    try:
        step = int(request.POST.get("step", "0"))
    except ValueError:
        step = -1
    if not 0 <= step < len(layout):
        return JsonResponse({"ok": False, "error": words["expired"]}, status=400)
    token = request.POST.get("token", "")
    page = request.POST.get("page", "") or request.META.get("HTTP_REFERER", "")
    page_origin = _origin_of_page(page, request.POST)
    result = services.signup_submit(
        form=form,
        layout=layout,
        step=step,
        data=request.POST,
        origin=services.Origin(
            page=page_origin.page,
            utm_source=page_origin.utm_source,
            utm_medium=page_origin.utm_medium,
            utm_campaign=page_origin.utm_campaign,
            ip=client_ip(request),
            user_agent=request.headers.get("User-Agent", ""),
        ),
    )
    errors, error, next_step = result.errors, result.error, result.next_step
    if as_json:
        payload: dict[str, Any] = {"ok": result.status == 200 and not errors and not error}
        if errors or error:
            payload.update(errors=errors, error=error)
        elif next_step is not None:
            payload.update(step=next_step, signup=result.signup_token)
        else:
            payload.update(
                done=True,
                message=result.message,
                redirect=result.redirect,
                download_url=result.download_url,
            )
        return _cors(JsonResponse(payload, status=result.status), origin)
    if errors or error or next_step is not None:
        context = _context(
            request,
            form,
            step=step if next_step is None else next_step,
            mode=mode,
            page=page,
            token=None if error == words["expired"] else token,
            errors=errors,
            error=error,
            values=request.POST if (errors or error) else {},
            signup_token=result.signup_token or request.POST.get("signup", ""),
        )
        response = render(request, "signup/public/form_page.html", context, status=result.status)
    elif result.redirect:
        return HttpResponseRedirect(result.redirect)
    else:
        response = render(
            request,
            "signup/public/message.html",
            {
                "form": form,
                "words": words,
                "theme": theme_for_display(form.theme),
                "message": result.message,
                "redirect": result.redirect,
                "download_url": result.download_url,
            },
        )
    if mode == "frame":
        response = _frame_policy(response, form)
        response.xframe_options_exempt = True
    return response


def _signup_from(token: str, purpose: str, *, max_age: int | None) -> dict:
    try:
        payload = read_token(purpose, token, max_age=max_age)
    except BadToken:
        raise Http404("This link is invalid or has expired.") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("s"), int):
        raise Http404("This link is invalid.")
    return payload


@require_http_methods(["GET", "POST"])
@never_cache
def confirm(request, token):
    """Some mail servers open links in emails to check them: a GET only shows a button, the
    confirmation is the POST."""
    payload = _signup_from(token, CONFIRM_TOKEN, max_age=settings.SIGNUP_PURGE_DAYS * 86400)
    signup = (
        Signup.objects.select_related("form", "form__lead_magnet", "subscriber")
        .filter(pk=payload["s"])
        .first()
    )
    if signup is None:
        raise Http404("This signup no longer exists.")
    form = signup.form
    words = texts(signup.subscriber.language or form.language)
    context = {
        "form": form,
        "words": words,
        "theme": theme_for_display(form.theme),
        "signup": signup,
    }
    if request.method == "GET" and signup.confirmed_at is None:
        return render(request, "signup/public/confirm.html", context)
    if request.method == "POST":
        signup = services.signup_confirm(
            signup_id=signup.pk,
            ip=client_ip(request),
            user_agent=request.headers.get("User-Agent", ""),
        )
        if signup is None:  # deleted since the page was shown (purged, or erased)
            raise Http404("This signup no longer exists.")
    context.update(
        signup=signup,
        confirmed=True,
        download_url=download_url(signup),
        magnet=form.lead_magnet,
    )
    return render(request, "signup/public/confirm.html", context)


@require_GET
@never_cache
def download(request, token):
    """The lead magnet, through a signed link that expires (the magnet's link_hours)."""
    payload = _signup_from(token, DOWNLOAD_TOKEN, max_age=None)
    magnet = get_object_or_404(LeadMagnet, pk=payload.get("m"))
    _signup_from(token, DOWNLOAD_TOKEN, max_age=magnet.link_hours * 3600)
    if not Signup.objects.filter(pk=payload["s"], confirmed_at__isnull=False).exists():
        raise Http404("This link is invalid.")
    # Counting is analytics, like an open pixel: the download itself changes nothing.
    services.lead_magnet_download(signup_id=payload["s"], magnet=magnet)
    if magnet.file:
        return FileResponse(magnet.file.open("rb"), as_attachment=True, filename=magnet.filename)
    if magnet.url:
        # A URL set by staff, reached only through our signed token: not an open redirect.
        return HttpResponseRedirect(magnet.url)
    raise Http404("This file is no longer available.")
