import pytest
from django.urls import reverse

from tests.support.factories import UserFactory

DASHBOARD_PAGES = [
    "home",
    "subscribers:list",
    "subscribers:forms",
    "templates_app:list",
    "campaigns:list",
    "analytics:home",
]


@pytest.mark.parametrize("name", [*DASHBOARD_PAGES, "settings"])
def test_anonymous_visitors_are_sent_to_login(client, db, name):
    response = client.get(reverse(name))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("name", DASHBOARD_PAGES)
def test_a_viewer_reads_every_section(viewer_client, name):
    assert viewer_client.get(reverse(name)).status_code == 200


def test_a_viewer_and_an_editor_cannot_open_settings(viewer_client, editor_user):
    response = viewer_client.get(reverse("settings"))
    assert response.status_code == 403
    assert b"Not allowed" in response.content
    viewer_client.force_login(editor_user)
    assert viewer_client.get(reverse("settings")).status_code == 403


def test_a_user_without_a_role_is_refused(client, django_user_model):
    user = UserFactory(username="nobody", password="x", role=None)
    client.force_login(user)
    assert client.get(reverse("home")).status_code == 403


def test_an_admin_creates_a_user_with_a_role(admin_client, django_user_model):
    response = admin_client.post(
        reverse("user_create"),
        {
            "username": "newbie",
            "password1": "a-Long-pass-2026",
            "password2": "a-Long-pass-2026",
            "role": "editor",
        },
    )
    assert response.status_code == 302
    user = django_user_model.objects.get(username="newbie")
    assert list(user.groups.values_list("name", flat=True)) == ["editor"]


def test_an_admin_changes_a_role_and_cannot_demote_themself(admin_client, admin_user, viewer_user):
    admin_client.post(reverse("user_role", args=[viewer_user.pk]), {"role": "editor"})
    assert list(viewer_user.groups.values_list("name", flat=True)) == ["editor"]
    admin_client.post(reverse("user_role", args=[admin_user.pk]), {"role": "viewer"})
    assert list(admin_user.groups.values_list("name", flat=True)) == ["admin"]


def test_an_editor_cannot_manage_users(editor_client, viewer_user):
    response = editor_client.post(reverse("user_delete", args=[viewer_user.pk]))
    assert response.status_code == 403
    assert viewer_user.__class__.objects.filter(pk=viewer_user.pk).exists()


def test_deleting_a_user_is_a_post_only(admin_client, viewer_user):
    assert admin_client.get(reverse("user_delete", args=[viewer_user.pk])).status_code == 405
    admin_client.post(reverse("user_delete", args=[viewer_user.pk]))
    assert not viewer_user.__class__.objects.filter(pk=viewer_user.pk).exists()


def test_login_and_logout(client, admin_user):
    response = client.post(
        reverse("login"), {"username": admin_user.username, "password": "pw-" + admin_user.username}
    )
    assert response.status_code == 302
    assert client.get(reverse("home")).status_code == 200
    client.post(reverse("logout"))
    assert client.get(reverse("home")).status_code == 302


def test_unknown_pages_get_the_friendly_404(admin_client, settings):
    settings.DEBUG = False
    response = admin_client.get("/no-such-page/")
    assert response.status_code == 404
    assert b"Page not found" in response.content


def test_the_500_page_renders_without_the_database(rf):
    from core.views import server_error

    response = server_error(rf.get("/"))
    assert response.status_code == 500
    assert b"Something went wrong" in response.content
