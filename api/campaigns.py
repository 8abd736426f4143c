"""/campaigns: drafts, scheduling and the state machine, through the campaign views' own
forms and services (pre-flight, transitions, the dispatcher)."""

import datetime as dt
from typing import Annotated, Any

from django.db import transaction
from django.http import HttpRequest
from ninja import Router, Schema, Status
from pydantic import Field, StringConstraints

from analytics.reports import campaign_summary
from campaigns import services
from campaigns.forms import CampaignForm, ScheduleForm
from campaigns.models import Campaign, CampaignTransitionError
from campaigns.selectors import campaign_progress
from campaigns.tasks import campaigns_dispatch
from core.roles import Role, role_of
from subscribers.models import Topic

from .auth import require_scope
from .errors import ApiError, Error
from .schemas import Slug

router = Router(tags=["campaigns"])

ERRORS: dict[int, Any] = {
    400: Error,
    401: Error,
    403: Error,
    404: Error,
    409: Error,
    422: Error,
    429: Error,
}
Line = Annotated[str, StringConstraints(max_length=255, pattern=r"^[^\x00]*$")]


class CampaignOut(Schema):
    id: int
    name: str
    status: str
    status_reason: str
    template_id: int | None
    subject: str
    preheader: str
    topics: list[str]
    segment_id: int | None
    from_name: str
    from_email: str
    reply_to: str
    connection_id: int | None
    track_links: bool
    track_opens: bool
    tags: list[Any]
    test_mode: bool
    schedule_kind: str
    schedule_timezone: str
    next_run_at: dt.datetime | None
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    total: int
    created_at: dt.datetime
    updated_at: dt.datetime


class CampaignIn(Schema):
    name: Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00]*$")]
    template_id: int = Field(ge=1, le=2**62, description="A newsletter template.")
    topics: list[Slug] = Field(default_factory=list, max_length=100)
    segment_id: int | None = Field(None, ge=1, le=2**62)
    subject: Line = Field("", description="Empty: the template's.")
    preheader: Line = ""
    from_name: Annotated[str, StringConstraints(max_length=150, pattern=r"^[^\x00]*$")] = ""
    from_email: Annotated[str, StringConstraints(max_length=254, pattern=r"^[^\x00]*$")] = ""
    reply_to: Annotated[str, StringConstraints(max_length=254, pattern=r"^[^\x00]*$")] = ""
    connection_id: int | None = Field(None, ge=1, le=2**62)
    track_links: bool = True
    track_opens: bool = True
    tags: list[Annotated[str, StringConstraints(max_length=50, pattern=r"^[^\x00,]*$")]] = Field(
        default_factory=list, max_length=20
    )
    test_mode: bool = False


class ScheduleIn(Schema):
    kind: Annotated[str, StringConstraints(max_length=16)] = Field(
        description="now, once (send_at_local + timezone) or recurring (weekday + hour)."
    )
    send_at_local: Annotated[str, StringConstraints(max_length=40)] | None = Field(
        None, description="Once: wall-clock time in `timezone`, e.g. 2027-01-15T09:00."
    )
    timezone: Annotated[str, StringConstraints(max_length=64)] = "UTC"
    weekday: int | None = Field(None, ge=0, le=6, description="Recurring: 0 = Monday.")
    hour: int | None = Field(None, ge=0, le=23)
    only_new_since_last: bool = False
    local_send_hour: int | None = Field(None, ge=0, le=23)
    override: bool = Field(
        False, description="Admin keys made by an admin: despite blocking pre-flight findings."
    )


class StatsOut(Schema):
    campaign_id: int
    status: str
    progress: dict[str, Any]
    stats: dict[str, Any]
    rates: dict[str, float | None]


def campaign_out(campaign: Campaign) -> dict:
    return {
        **{
            name: getattr(campaign, name)
            for name in CampaignOut.model_fields
            if hasattr(campaign, name)
        },
        "topics": sorted(t.slug for t in campaign.topics.all()),
    }


def _campaign(campaign_id: int, *, lock: bool = False) -> Campaign:
    queryset = Campaign.objects.prefetch_related("topics")
    if lock:
        queryset = queryset.select_for_update(of=("self",))
    campaign = queryset.filter(pk=campaign_id).first()
    if campaign is None:
        raise ApiError(404, f"No campaign {campaign_id}.")
    return campaign


def _form_error(form) -> ApiError:
    names = {"template": "template_id", "segment": "segment_id", "connection": "connection_id"}
    name, errors = next(iter(form.errors.items()))
    field = None if name == "__all__" else names.get(name, name)
    return ApiError(422, f"{field + ': ' if field else ''}{errors[0]}", field=field)


@router.get("", response={200: list[CampaignOut], **ERRORS})
def campaign_list(request: HttpRequest, status: str | None = None):
    """The 200 newest campaigns."""
    require_scope(request, "read")
    queryset = Campaign.objects.prefetch_related("topics")
    if status:
        queryset = queryset.filter(status=status[:16])
    return [campaign_out(c) for c in queryset.order_by("-created_at", "-id")[:200]]


@router.post("", response={201: CampaignOut, **ERRORS}, summary="Create a draft")
def campaign_create(request: HttpRequest, payload: CampaignIn):
    """A draft, checked by the dashboard's own campaign form (audience, template, sender)."""
    key = require_scope(request, "write")
    topic_ids = list(Topic.objects.filter(slug__in=payload.topics).values_list("pk", flat=True))
    if len(topic_ids) != len(set(payload.topics)):
        raise ApiError(422, "topics: unknown topic.", field="topics")
    data = payload.dict()
    data.update(
        topics=topic_ids,
        template=payload.template_id,
        segment=payload.segment_id or "",
        connection=payload.connection_id or "",
        tags=", ".join(payload.tags),
        max_consecutive_failures=20,
        unknown_settle_action="accept",
    )
    for flag in ("track_links", "track_opens", "test_mode"):
        if not data[flag]:
            data.pop(flag)  # an unticked checkbox sends nothing
    form = CampaignForm(data=data)
    if not form.is_valid():
        raise _form_error(form)
    with transaction.atomic():
        campaign = form.save(commit=False)
        campaign.created_by = key.created_by
        campaign.save()
        form.save_m2m()
    return Status(201, campaign_out(_campaign(campaign.pk)))


@router.get("/{int:campaign_id}", response={200: CampaignOut, **ERRORS})
def campaign_detail(request: HttpRequest, campaign_id: int):
    require_scope(request, "read")
    return campaign_out(_campaign(campaign_id))


def _act(campaign_id: int, action) -> dict:
    try:
        with transaction.atomic():
            campaign = _campaign(campaign_id, lock=True)
            action(campaign)
    except CampaignTransitionError as exc:
        raise ApiError(409, str(exc), code="transition") from None
    return campaign_out(_campaign(campaign_id))


@router.post("/{int:campaign_id}/schedule", response={200: CampaignOut, **ERRORS})
def campaign_schedule(request: HttpRequest, campaign_id: int, payload: ScheduleIn):
    """Draft → scheduled, after the pre-flight (blocking findings refuse it: 409)."""
    key = require_scope(request, "write")
    data = payload.dict()
    override = data.pop("override")
    form = ScheduleForm(data={k: v for k, v in data.items() if v not in (None, False)})
    if not form.is_valid():
        raise _form_error(form)
    if override and not (
        "admin" in key.scopes and key.created_by and role_of(key.created_by) == Role.ADMIN
    ):
        raise ApiError(403, "Only an admin key made by an admin can override.", field="override")

    def schedule(campaign: Campaign) -> None:
        form.apply_to(campaign)  # as the campaign page's schedule form does
        campaign.save()
        services.campaign_schedule(
            campaign=campaign, user=key.created_by, override=override, check_links=True
        )
        if campaign.schedule_kind == Campaign.ScheduleKind.NOW:
            transaction.on_commit(campaigns_dispatch.delay)

    return _act(campaign_id, schedule)


@router.post("/{int:campaign_id}/pause", response={200: CampaignOut, **ERRORS})
def campaign_pause(request: HttpRequest, campaign_id: int):
    require_scope(request, "write")
    return _act(campaign_id, lambda c: services.campaign_pause(campaign=c))


@router.post("/{int:campaign_id}/resume", response={200: CampaignOut, **ERRORS})
def campaign_resume(request: HttpRequest, campaign_id: int):
    require_scope(request, "write")
    return _act(campaign_id, lambda c: services.campaign_resume(campaign=c))


@router.post("/{int:campaign_id}/cancel", response={200: CampaignOut, **ERRORS})
def campaign_cancel(request: HttpRequest, campaign_id: int):
    require_scope(request, "write")
    return _act(campaign_id, lambda c: services.campaign_cancel(campaign=c))


@router.get("/{int:campaign_id}/stats", response={200: StatsOut, **ERRORS})
def campaign_stats(request: HttpRequest, campaign_id: int):
    """Sending progress (the ledger's counters) and the report's figures and rates."""
    require_scope(request, "read")
    campaign = _campaign(campaign_id)
    summary = campaign_summary(campaign)
    stats = summary.pop("stats")
    progress = campaign_progress(campaign)
    progress.pop("breakdown", None)
    eta = progress.get("eta")
    if isinstance(eta, dt.datetime):
        progress["eta"] = eta.isoformat()
    stats_fields = {
        f.name: getattr(stats, f.name)
        for f in stats._meta.concrete_fields
        if f.name not in ("id", "campaign", "updated_at")
    }
    return {
        "campaign_id": campaign.pk,
        "status": campaign.status,
        "progress": progress,
        "stats": {**stats_fields, "sent": summary["sent"], "base": summary["base"]},
        "rates": {k: v for k, v in summary.items() if k.endswith("_rate") or k == "click_to_open"},
    }
