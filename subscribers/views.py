from django.core.paginator import Paginator
from django.shortcuts import render

from core.roles import viewer_required

from .models import Subscriber


@viewer_required
def subscriber_list(request):
    page = Paginator(Subscriber.objects.order_by("-id"), 50).get_page(request.GET.get("page"))
    return render(request, "subscribers/list.html", {"page": page})


@viewer_required
def form_list(request):
    return render(request, "subscribers/forms.html", {})
