"""The visitor's side: hosted page, iframe, embed configuration, cross-origin submit, opt-in
confirmation and lead-magnet download. No login; signed tokens everywhere.

The submit endpoint takes cross-site posts from the embed script on other origins, where our
CSRF cookie would be a third-party cookie (blocked): it is csrf_exempt and checks a signed,
timestamped form token instead, plus the form's origin allow-list (CORS).
"""

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
    Refused,
    address_key,
    client_ip,
    email_check,
    form_token_check,
    form_token_make,
    pow_spend,
    pow_valid,
    rate_hit,
    step_token_make,
    step_token_read,
)
from .schema import UTM_KEYS, consent_notice, form_layout, step_validate, texts, theme_for_display


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
        "token": extra.pop("token", None) or form_token_make(form.pk),
        "pow_bits": settings.SIGNUP_POW_BITS if form.proof_of_work else 0,
        "honeypot": HONEYPOT_FIELD,
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
    origin = request.headers.get("Origin", "")
    if origin and not _origin_ok(request, form, origin):
        return JsonResponse({"ok": False, "error": "This site may not show this form."}, status=403)
    if request.method == "OPTIONS":
        return _cors(HttpResponse(status=204), origin)
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
        "token": form_token_make(form.pk),
        "pow_bits": settings.SIGNUP_POW_BITS if form.proof_of_work else 0,
        "honeypot": HONEYPOT_FIELD,
        "consent_notice": consent_notice(form),
        "submit_url": request.build_absolute_uri(reverse("signup:submit", args=[public_id])),
    }
    return _cors(JsonResponse(data), origin)


@csrf_exempt
@require_http_methods(["POST", "OPTIONS"])
@never_cache
def submit(request, public_id):
    form = _form(public_id)
    origin = request.headers.get("Origin", "")
    if origin and not _origin_ok(request, form, origin):
        return JsonResponse({"ok": False, "error": "This site may not use this form."}, status=403)
    if request.method == "OPTIONS":
        return _cors(HttpResponse(status=204), origin)
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

    def answer(status=200, *, errors=None, error="", next_step=None, signup_token="", **done):
        if as_json:
            payload = {"ok": status == 200 and not errors and not error}
            if errors or error:
                payload.update(errors=errors or {}, error=error)
            elif next_step is not None:
                payload.update(step=next_step, signup=signup_token)
            else:
                payload.update(done=True, **done)
            return _cors(JsonResponse(payload, status=status), origin)
        if errors or error or next_step is not None:
            context = _context(
                request,
                form,
                step=step if next_step is None else next_step,
                mode=mode,
                page=page,
                token=None if error == words["expired"] else token,
                errors=errors or {},
                error=error,
                values=request.POST if (errors or error) else {},
                signup_token=signup_token or request.POST.get("signup", ""),
            )
            response = render(request, "signup/public/form_page.html", context, status=status)
        elif done.get("redirect"):
            return HttpResponseRedirect(done["redirect"])
        else:
            response = render(
                request,
                "signup/public/message.html",
                {"form": form, "words": words, "theme": theme_for_display(form.theme), **done},
            )
        if mode == "frame":
            response = _frame_policy(response, form)
            response.xframe_options_exempt = True
        return response

    def finished(signup: Signup | None, *, activated: bool) -> HttpResponse:
        is_last = step == len(layout) - 1
        if not is_last:
            return answer(
                next_step=step + 1,
                signup_token=step_token_make(signup_id=signup.pk if signup else 0, form_id=form.pk),
            )
        # With double opt-in the form's own message speaks of the pending confirmation: an
        # address confirmed already (nothing to confirm, no email sent) gets the built-in text.
        custom = form.success_message if activated == (not form.double_opt_in) else ""
        message = custom or words["success_no_doi" if activated else "success"]
        redirect = form.redirect_url if form.success_action == form.SuccessAction.REDIRECT else ""
        link = download_url(signup) if (signup and activated and signup.confirmed_at) else ""
        return answer(message=message, redirect=redirect, download_url=link)

    # A bot that fills the hidden field gets exactly what a person would see, and nothing else.
    if request.POST.get(HONEYPOT_FIELD):
        return finished(None, activated=not form.double_opt_in)
    try:
        # The minimum fill time applies to step 1; later steps come after an answer from us.
        min_fill = form.min_fill_seconds if step == 0 else 0
        form_token_check(token, form_id=form.pk, min_fill_seconds=min_fill)
        ip = client_ip(request)
        if not rate_hit(
            f"ip:{ip}", limit=settings.SIGNUP_RATE_PER_IP, window=settings.SIGNUP_RATE_IP_WINDOW
        ):
            raise Refused("rate_limited", 429)
        data, errors = step_validate(layout[step]["fields"], request.POST, language=form.language)
        if step == 0:
            email, problem = "", ""
            if "email" not in errors:
                email, problem = email_check(
                    data.email, reject_disposable=form.reject_disposable, check_dns=form.check_dns
                )
            if problem:
                errors["email"] = words[problem]
            if errors:
                return answer(400, errors=errors)
            if form.proof_of_work and not (
                pow_valid(token, request.POST.get("pow", ""), settings.SIGNUP_POW_BITS)
                and pow_spend(token)
            ):
                raise Refused("pow", 400)
            if not rate_hit(
                f"address:{address_key(email)}",
                limit=settings.SIGNUP_RATE_PER_ADDRESS,
                window=settings.SIGNUP_RATE_ADDRESS_WINDOW,
            ):
                # Someone is hammering one address: answer as usual, do nothing.
                return finished(None, activated=not form.double_opt_in)
            origin_info = _origin_of_page(page, request.POST)
            started = services.signup_start(
                form=form,
                email=email,
                step=data,
                origin=services.Origin(
                    page=origin_info.page,
                    utm_source=origin_info.utm_source,
                    utm_medium=origin_info.utm_medium,
                    utm_campaign=origin_info.utm_campaign,
                    ip=ip,
                    user_agent=request.headers.get("User-Agent", ""),
                ),
                last_step=len(layout) == 1,
            )
            return finished(started, activated=started.confirmed_at is not None)
        signup_id = step_token_read(request.POST.get("signup", ""), form_id=form.pk)
        if errors:
            return answer(400, errors=errors)
        signup = Signup.objects.filter(pk=signup_id, form=form).first() if signup_id else None
        if signup is not None:
            signup = services.signup_continue(
                signup=signup, step_index=step, step=data, last_step=step == len(layout) - 1
            )
        return finished(signup, activated=bool(signup and signup.confirmed_at))
    except Refused as exc:
        return answer(exc.status, error=words[exc.code])


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
