from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from billing import quotas


@login_required
def overview(request):
    usage = quotas.summary(request.project, request.user) if request.project else []
    return render(request, "dashboard/overview.html", {"usage": usage})
