from .roles import Role, has_role, role_of


def roles(request):
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {
        "user_role": role_of(user),
        "can_edit": has_role(user, Role.EDITOR),
        "is_admin": has_role(user, Role.ADMIN),
    }
