from django.http import HttpResponse


def center(request, token: str):
    return HttpResponse("The preference center is being built.", status=501)


def unsubscribe(request, token: str):
    return HttpResponse("One-click unsubscribe is being built.", status=501)
