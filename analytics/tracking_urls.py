# The public tracking endpoints (open pixel, click redirect) are mounted at /t/.
urlpatterns = []
