from django.shortcuts import render

from core.roles import viewer_required


@viewer_required
def analytics_home(request):
    return render(request, "analytics/home.html", {})
