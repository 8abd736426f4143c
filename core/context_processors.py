from django.conf import settings

from .roles import PERSONAL_DATA_EXPORT_ROLE, Role, has_role, role_of


def roles(request):
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {
        "user_role": role_of(user),
        "can_edit": has_role(user, Role.EDITOR),
        "is_admin": has_role(user, Role.ADMIN),
        "can_export_personal_data": has_role(user, PERSONAL_DATA_EXPORT_ROLE),
    }


def brand(request):
    return {
        "brand": {
            "company": settings.COMPANY_NAME,
            "postal_address": settings.COMPANY_POSTAL_ADDRESS,
            "color": settings.BRAND_COLOR,
            "logo_url": settings.BRAND_LOGO_URL,
        }
    }
