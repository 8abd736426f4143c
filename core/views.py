import logging

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.staticfiles import finders
from django.db import connection
from django.http import FileResponse, Http404, HttpResponseServerError, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template import loader
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import cache_control, never_cache
from django.views.decorators.http import require_GET, require_POST

from nofailmail.celery import app as celery_app

from .forms import UserCreateForm, UserRoleForm
from .roles import Role, admin_required, role_of, user_set_role

logger = logging.getLogger(__name__)


def _database_ok() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:  # a health check reports every failure, it never raises one
        return str(exc) or exc.__class__.__name__
    return None


def _broker_ok() -> str | None:
    try:
        with celery_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:  # a health check reports every failure, it never raises one
        return str(exc) or exc.__class__.__name__
    return None


@never_cache
def healthz(request):
    """200 when the database and the broker answer; 503 naming what is down."""
    checks = {"database": _database_ok(), "broker": _broker_ok()}
    down = sorted(name for name, error in checks.items() if error)
    for name in down:
        logger.warning("healthz: %s is down: %s", name, checks[name])
    body = {
        "status": "ok" if not down else "down",
        "checks": {name: ("ok" if error is None else "down") for name, error in checks.items()},
        "down": down,
    }
    return JsonResponse(body, status=503 if down else 200)


@require_GET
@cache_control(max_age=86400, public=True)
def favicon(request):
    """Browsers ask for /favicon.ico whatever the page links: answer it, not a 404."""
    path = finders.find("favicon.ico")
    if not path:
        raise Http404
    return FileResponse(open(path, "rb"), content_type="image/x-icon")


def method_not_allowed(request, allowed: list[str]):
    """A POST-only address opened in the browser (a bookmarked or reloaded form target)
    gets a page saying what to do, still a 405."""
    response = render(
        request,
        "errors/405.html",
        {"allowed": allowed, "back": _same_site_referer(request)},
        status=405,
    )
    response["Allow"] = ", ".join(allowed)
    return response


def _same_site_referer(request) -> str:
    referer = request.META.get("HTTP_REFERER", "")
    if referer and url_has_allowed_host_and_scheme(
        referer, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return referer
    return ""


def permission_denied(request, exception=None):
    return render(request, "errors/403.html", {"reason": str(exception or "")}, status=403)


def page_not_found(request, exception=None):
    return render(request, "errors/404.html", status=404)


def server_error(request):
    # No context processors that touch the database: the error may be the database itself.
    return HttpResponseServerError(loader.get_template("errors/500.html").render())


@admin_required
def settings_home(request):
    User = get_user_model()
    users = User.objects.order_by("username").prefetch_related("groups")
    rows = [{"user": u, "role": role_of(u)} for u in users]
    return render(
        request,
        "core/settings.html",
        {"rows": rows, "create_form": UserCreateForm(), "roles": Role.choices},
    )


@admin_required
@require_POST
def user_create(request):
    form = UserCreateForm(request.POST)
    if form.is_valid():
        user = form.save()
        messages.success(request, f"User {user.username} created as {form.cleaned_data['role']}.")
        return redirect("settings")
    User = get_user_model()
    rows = [{"user": u, "role": role_of(u)} for u in User.objects.order_by("username")]
    return render(request, "core/settings.html", {"rows": rows, "create_form": form}, status=400)


@admin_required
@require_POST
def user_role(request, user_id: int):
    user = get_object_or_404(get_user_model(), pk=user_id)
    form = UserRoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a valid role.")
    elif user == request.user:
        messages.error(request, "You cannot change your own role.")
    else:
        user_set_role(user=user, role=Role(form.cleaned_data["role"]))
        messages.success(request, f"{user.username} is now {form.cleaned_data['role']}.")
    return redirect("settings")


@admin_required
@require_POST
def user_delete(request, user_id: int):
    user = get_object_or_404(get_user_model(), pk=user_id)
    if user == request.user:
        messages.error(request, "You cannot delete your own account.")
    else:
        user.delete()
        messages.success(request, f"User {user.username} deleted.")
    return redirect("settings")
