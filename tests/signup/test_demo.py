import io

from signup import demo
from signup.models import FormView, Signup, SignupForm
from signup.selectors import form_stats
from subscribers import demo as subscribers_demo


def test_the_demo_form_loads_once_with_a_funnel_to_show(db, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    out = io.StringIO()
    subscribers_demo.load(stdout=out)
    demo.load(stdout=out)
    demo.load(stdout=out)
    form = SignupForm.objects.get()
    assert form.lead_magnet.file.read().startswith(b"%PDF")
    assert {t.language for t in form.confirmation_templates.all()} == {"en", "fr"}
    assert FormView.objects.exists() and Signup.objects.exists()
    stats = form_stats(form)
    assert stats["views"] > stats["submissions"] > 0
    assert "already present" in out.getvalue()
