from django.shortcuts import render

from core.roles import viewer_required

from .models import Template


@viewer_required
def template_list(request):
    templates = Template.objects.all()
    return render(request, "templates_app/list.html", {"templates": templates})
