from django.shortcuts import render

from core.roles import viewer_required

from .models import Campaign


@viewer_required
def campaign_list(request):
    return render(request, "campaigns/list.html", {"campaigns": Campaign.objects.all()[:100]})
