"""Dashboard roles: viewer < editor < admin.

A viewer reads everything; an editor also writes content, audiences and campaigns; an admin
also manages settings, users and deletions. Roles are Django groups (created by a migration) so
they show in the admin; a superuser is always an admin.
"""

from collections.abc import Callable
from functools import wraps
from typing import cast

from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.db import models


class Role(models.TextChoices):
    VIEWER = "viewer", "Viewer"
    EDITOR = "editor", "Editor"
    ADMIN = "admin", "Admin"


RANK = {Role.VIEWER: 1, Role.EDITOR: 2, Role.ADMIN: 3}


def role_of(user) -> Role | None:
    if not user.is_authenticated or not user.is_active:
        return None
    if user.is_superuser:
        return Role.ADMIN
    cached: Role | str | None = getattr(user, "_nofailmail_role", "unset")
    if cached != "unset":
        return cast(Role | None, cached)
    names = set(user.groups.values_list("name", flat=True))
    role = next((r for r in (Role.ADMIN, Role.EDITOR, Role.VIEWER) if r.value in names), None)
    user._nofailmail_role = role
    return role


def has_role(user, needed: Role) -> bool:
    role = role_of(user)
    return role is not None and RANK[role] >= RANK[needed]


def role_required(needed: Role) -> Callable:
    """Login required, then at least the given role; otherwise 403."""

    def decorator(view):
        @login_required
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if not has_role(request.user, needed):
                raise PermissionDenied(f"This needs the {needed.label.lower()} role.")
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


viewer_required = role_required(Role.VIEWER)
editor_required = role_required(Role.EDITOR)
admin_required = role_required(Role.ADMIN)

# Personal data follows one rule: whoever may not export the subscribers may not download any
# other per-person file either (a campaign's per-recipient CSV). Aggregates stay readable.
PERSONAL_DATA_EXPORT_ROLE = Role.EDITOR
personal_data_export_required = role_required(PERSONAL_DATA_EXPORT_ROLE)


def user_set_role(*, user, role: Role) -> None:
    groups = Group.objects.filter(name__in=[r.value for r in Role])
    user.groups.remove(*groups)
    # get_or_create: the groups come from a data migration, which a flushed database lacks.
    user.groups.add(Group.objects.get_or_create(name=role.value)[0])
    user._nofailmail_role = "unset"
