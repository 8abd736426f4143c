"""Settings → API keys: admins make, see and revoke keys (the token is shown once)."""

from django.contrib import messages
from django.core.cache import cache
from django.db.models import Count
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from core.roles import admin_required

from .errors import error_response
from .forms import ApiKeyForm
from .keys import KeyError_, api_key_create, api_key_revoke
from .models import ApiKey


@never_cache
@admin_required
def key_list(request):
    form = ApiKeyForm(request.POST or None)
    new_token = ""
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        if data["once"] and not cache.add(f"api:key-form:{data['once']}", 1, timeout=86400):
            messages.info(
                request,
                "This form was already sent: the key it made is in the list below (its token "
                "was shown once). Use the form again for another key.",
            )
            return redirect("api:keys")
        try:
            created = api_key_create(
                name=data["name"],
                scopes=data["scopes"],
                allowed_networks=data["allowed_networks"],
                rate_per_minute=data["rate_per_minute"],
                user=request.user,
            )
        except KeyError_ as exc:
            form.add_error(None, str(exc))
        else:
            # Rendered, not redirected: the token must not travel through a session or a URL.
            new_token = created.token
            messages.success(request, f"Key “{created.key.name}” created. Copy it now.")
            form = ApiKeyForm()
    keys = ApiKey.objects.select_related("created_by").annotate(write_count=Count("writes"))
    return render(request, "api/keys.html", {"form": form, "keys": keys, "new_token": new_token})


@admin_required
@require_POST
def key_revoke(request, key_id: int):
    key = get_object_or_404(ApiKey, pk=key_id)
    api_key_revoke(key=key)
    messages.success(request, f"Key “{key.name}” revoked: it no longer opens the API.")
    return redirect("api:keys")


@csrf_exempt
def api_not_found(request, path=""):
    """Any other address under /api/: the API's 404, not the dashboard's page (an HTML page
    to a client that parses JSON, and one that needs the static files' manifest)."""
    return error_response(404, "No such endpoint: see /api/v1/docs.")
