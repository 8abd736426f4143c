import pytest
from django.core.exceptions import ValidationError

from templates_app.models import TemplateVersion
from templates_app.selectors import current_version, template_versions
from templates_app.services import template_create, template_restore, template_update
from tests.support.factories import LayoutFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def newsletter(editor_user):
    layout = LayoutFactory()
    return template_create(
        kind="newsletter",
        name="March",
        subject="v1 subject",
        html_body="<p>v1</p>",
        layout=layout,
        user=editor_user,
    )


def test_creating_a_template_keeps_version_one_with_the_layout_snapshot(newsletter, editor_user):
    version = current_version(newsletter)
    assert (version.number, version.subject, version.created_by) == (1, "v1 subject", editor_user)
    assert version.layout_html == "<html><body>{{ content }}</body></html>"


def test_every_save_keeps_a_new_version_and_old_ones_stay_untouched(newsletter):
    newsletter.layout.html = "<div>{{ content }}</div>"
    newsletter.layout.save()
    template_update(template=newsletter, subject="v2 subject", html_body="<p>v2</p>")
    assert newsletter.current_version == 2
    v1, v2 = TemplateVersion.objects.filter(template=newsletter).order_by("number")
    assert (v1.subject, v1.layout_html) == (
        "v1 subject",
        "<html><body>{{ content }}</body></html>",
    )
    assert (v2.subject, v2.html_body, v2.layout_html) == (
        "v2 subject",
        "<p>v2</p>",
        "<div>{{ content }}</div>",
    )


def test_restoring_brings_an_old_version_back_as_the_newest(newsletter):
    template_update(template=newsletter, subject="v2 subject", html_body="<p>v2</p>")
    restored = template_restore(template=newsletter, number=1)
    assert restored.number == 3
    newsletter.refresh_from_db()
    assert (newsletter.subject, newsletter.html_body) == ("v1 subject", "<p>v1</p>")
    assert [v.number for v in template_versions(newsletter)] == [3, 2, 1]
    assert restored.layout_html == "<html><body>{{ content }}</body></html>"


def test_a_malformed_tag_refuses_the_save_and_changes_nothing(newsletter):
    with pytest.raises(ValidationError) as info:
        template_update(template=newsletter, html_body="<p>\n{{ first name }}</p>")
    assert "line 2, column 1" in str(info.value.message_dict["html_body"])
    newsletter.refresh_from_db()
    assert (newsletter.html_body, newsletter.current_version) == ("<p>v1</p>", 1)
