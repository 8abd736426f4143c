import pytest

from templates_app import demo
from templates_app.lint import lint_version
from templates_app.models import Layout, Template
from templates_app.rendering import compile_version
from templates_app.selectors import current_version

pytestmark = pytest.mark.django_db


@pytest.fixture
def loaded(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    # Production runs on https; on a dev http SITE_URL the linter rightly warns about the image.
    settings.SITE_URL = "https://mail.example.com"
    demo.load()
    return Template.objects.all()


def test_demo_data_loads_once_with_three_starters_and_six_replies_in_two_languages(loaded):
    demo.load()  # idempotent
    assert Layout.objects.count() == 1
    assert loaded.filter(kind="newsletter").count() == 3
    replies = loaded.filter(kind="canned_reply")
    assert sorted(replies.values_list("language", flat=True)) == ["en"] * 6 + ["fr"] * 6


def test_every_starter_and_reply_passes_the_linter(loaded):
    for template in loaded:
        findings = lint_version(current_version(template))
        # Canned replies use first_name with a default; the only acceptable warnings are none.
        assert findings == [], (template.name, findings)


def test_the_hero_image_comes_from_the_library_with_an_absolute_url(loaded, settings):
    hero = loaded.get(name="Starter: announcement with hero image")
    html = compile_version(current_version(hero)).render({}).html
    assert f'src="{settings.SITE_URL}/templates/i/' in html
    assert f'alt="{demo.HERO_ALT}"' in html
