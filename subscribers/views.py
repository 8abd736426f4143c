import json
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.db import transaction
from django.db.models import Count, Max
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.defaultfilters import pluralize
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape
from django.views.decorators.http import require_POST

from core.csv_download import csv_response
from core.roles import (
    Role,
    admin_required,
    editor_required,
    has_role,
    personal_data_export_required,
    viewer_required,
)

from . import services
from .emails import EmailError
from .forms import (
    CustomFieldForm,
    ImportOptionsForm,
    ImportUploadForm,
    SegmentForm,
    SubscriberForm,
    TopicForm,
)
from .importing import (
    ImportError_,
    import_job_create,
    import_job_stalled,
    import_job_start,
    import_preview,
    import_rejection_rows,
)
from .models import CustomField, ImportJob, Segment, Subscriber, Topic
from .segments import BUILDER_FIELDS, OPS_BY_TYPE, SegmentRuleError, rules_q, segment_queryset
from .selectors import (
    segment_live_count,
    subscriber_timeline,
    subscribers_export_rows,
    subscribers_filtered,
    subscribers_page,
    subscribers_selected,
    subscribers_total,
)
from .tasks import import_job_enqueue, import_job_resume

PAGE_SIZE = 50
FILTER_KEYS = ["q", "status", "topic", "segment", "attr", "attr_value"]


def _filters(params) -> dict:
    return {key: params.get(key, "").strip() for key in FILTER_KEYS if params.get(key, "").strip()}


@viewer_required
def subscriber_list(request):
    filters = _filters(request.GET)
    try:
        queryset = subscribers_filtered(filters)
        error = ""
    except SegmentRuleError as exc:
        queryset, error = Subscriber.objects.none(), str(exc)
    after, before = request.GET.get("after", ""), request.GET.get("before", "")
    page = subscribers_page(
        queryset,
        after=int(after) if after.isdigit() else None,
        before=int(before) if before.isdigit() else None,
        size=PAGE_SIZE,
    )
    rows = page.rows
    base = urlencode(filters)
    context = {
        "rows": rows,
        "filters": filters,
        "filter_query": base,
        "error": error,
        "older_url": f"?{base}&after={rows[-1].id}" if rows and page.has_older else "",
        "newer_url": f"?{base}&before={rows[0].id}" if rows and page.has_newer else "",
        "statuses": Subscriber.Status.choices,
        "topics": Topic.objects.all(),
        "segments": Segment.objects.all(),
        "custom_fields": CustomField.objects.all(),
        "any_subscriber": bool(rows) or Subscriber.objects.exists(),
        "total": subscribers_total(queryset, filtered=bool(filters)) if not error else None,
    }
    return render(request, "subscribers/list.html", context)


# Actions that cannot be taken back go through a page that says how many they touch.
CONFIRMED_ACTIONS = {"delete", "suppress"}


def _ticked(params) -> set[int]:
    return {int(i) for i in params.getlist("ids") if i.isdigit() and len(i) <= 18}


@editor_required
@require_POST
def subscriber_bulk(request):
    filters = _filters(request.POST)
    back = f"{reverse('subscribers:list')}?{urlencode(filters)}"
    action = request.POST.get("action", "")
    if action == "delete" and not has_role(request.user, Role.ADMIN):
        messages.error(request, "Deleting subscribers needs the admin role.")
        return redirect(back)
    if request.POST.get("scope") != "all" and not _ticked(request.POST):
        messages.error(request, "Tick the subscribers to act on, or choose all matching.")
        return redirect(back)
    try:
        upto = request.POST.get("upto", "")
        queryset = subscribers_selected(
            filters=filters,
            ids=None if request.POST.get("scope") == "all" else _ticked(request.POST),
            upto=int(upto) if upto.isdigit() and len(upto) <= 18 else None,
        )
    except SegmentRuleError as exc:
        messages.error(request, str(exc))
        return redirect("subscribers:list")
    if action in CONFIRMED_ACTIONS and request.POST.get("confirmed") != "yes":
        summary = queryset.order_by().aggregate(n=Count("id"), upto=Max("id"))
        if not summary["n"]:
            messages.info(request, "No subscriber matches this selection.")
            return redirect(back)
        return render(
            request,
            "subscribers/bulk_confirm.html",
            {
                "action": action,
                "count": summary["n"],
                "upto": summary["upto"],
                "filters": filters,
                "scope": request.POST.get("scope", ""),
                "ids": request.POST.getlist("ids"),
                "back": back,
            },
        )
    if action in ("topic_add", "topic_remove"):
        topic = Topic.objects.filter(pk=_int_or_zero(request.POST.get("target_topic"))).first()
        if topic is None:
            messages.error(request, "Choose a topic.")
        else:
            n = services.subscribers_bulk_topic(
                queryset=queryset, topic=topic, add=action == "topic_add"
            )
            verb = "added to" if action == "topic_add" else "removed from"
            messages.success(request, f"{n} subscriber{pluralize(n)} {verb} {topic.name}.")
    elif action == "suppress":
        n = services.subscribers_bulk_suppress(
            queryset=queryset, note="bulk action", event=f"dashboard:{request.user.username}"
        )
        messages.success(request, f"{n} address{pluralize(n, 'es')} suppressed.")
    elif action == "delete":
        n = services.subscribers_bulk_delete(queryset=queryset)
        messages.success(request, f"{n} subscriber{pluralize(n)} deleted.")
    else:
        messages.error(request, "Unknown action.")
    return redirect(back)


def _int_or_zero(value) -> int:
    return int(value) if isinstance(value, str) and value.isdigit() and len(value) <= 18 else 0


@personal_data_export_required
def subscriber_export_csv(request):
    filters = _filters(request.GET)
    try:
        queryset = subscribers_filtered(filters)
    except SegmentRuleError as exc:
        messages.error(request, str(exc))
        return redirect("subscribers:list")
    return csv_response(
        subscribers_export_rows(queryset), filename=f"subscribers-{timezone.now():%Y%m%d-%H%M}.csv"
    )


@editor_required
def subscriber_create(request):
    form = SubscriberForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            subscriber = services.subscriber_create(
                email=data["email"],
                first_name=data["first_name"],
                last_name=data["last_name"],
                attributes=data["attributes"],
                language=data["language"],
                topics=list(data["topics"]),
            )
        except EmailError as exc:
            form.add_error("email", str(exc))
        else:
            messages.success(request, f"{subscriber.email} added.")
            return redirect("subscribers:detail", subscriber.pk)
    return render(request, "subscribers/edit.html", {"form": form, "subscriber": None})


@viewer_required
def subscriber_detail(request, subscriber_id: int):
    subscriber = get_object_or_404(Subscriber, pk=subscriber_id)
    subscriptions = subscriber.subscriptions.select_related("topic").order_by("topic__name")
    subscribed_ids = {s.topic_id for s in subscriptions}
    fields = list(CustomField.objects.all())
    return render(
        request,
        "subscribers/detail.html",
        {
            "subscriber": subscriber,
            "attributes": [(f.label, subscriber.attributes.get(f.key)) for f in fields]
            + [
                (k, v) for k, v in subscriber.attributes.items() if k not in {f.key for f in fields}
            ],
            "subscriptions": subscriptions,
            "other_topics": Topic.objects.exclude(pk__in=subscribed_ids),
            "consents": subscriber.consent_records.all(),
            "timeline": subscriber_timeline(subscriber),
            "suppressed": services.is_suppressed(subscriber.email),
            # A pause the recipient chose (preference center): campaigns skip them until then.
            "paused_until": (
                subscriber.paused_until
                if subscriber.paused_until and subscriber.paused_until > timezone.now()
                else None
            ),
        },
    )


@editor_required
def subscriber_edit(request, subscriber_id: int):
    subscriber = get_object_or_404(Subscriber, pk=subscriber_id, erased_at__isnull=True)
    form = SubscriberForm(
        request.POST or None,
        subscriber=subscriber,
        initial={
            "email": subscriber.email,
            "first_name": subscriber.first_name,
            "last_name": subscriber.last_name,
            "language": subscriber.language,
            "timezone": subscriber.timezone,
        },
    )
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            services.subscriber_update(
                subscriber=subscriber,
                email=data["email"],
                first_name=data["first_name"],
                last_name=data["last_name"],
                language=data["language"],
                timezone=data["timezone"],
                attributes={**subscriber.attributes, **data["attributes"]},
            )
        except EmailError as exc:
            form.add_error("email", str(exc))
        else:
            messages.success(request, "Saved.")
            return redirect("subscribers:detail", subscriber.pk)
    return render(request, "subscribers/edit.html", {"form": form, "subscriber": subscriber})


@editor_required
@require_POST
def subscriber_topic(request, subscriber_id: int):
    subscriber = get_object_or_404(Subscriber, pk=subscriber_id, erased_at__isnull=True)
    topic = get_object_or_404(Topic, pk=request.POST.get("topic") or 0)
    if request.POST.get("action") == "remove":
        services.topic_unsubscribe(subscriber=subscriber, topic=topic)
    else:
        services.topic_subscribe(subscriber=subscriber, topic=topic)
    return redirect("subscribers:detail", subscriber.pk)


@editor_required
@require_POST
def subscriber_unsubscribe(request, subscriber_id: int):
    subscriber = get_object_or_404(Subscriber, pk=subscriber_id)
    services.subscriber_unsubscribe(
        subscriber=subscriber, source=f"dashboard:{request.user.username}"
    )
    messages.success(request, f"{subscriber.email} is unsubscribed from everything.")
    return redirect("subscribers:detail", subscriber.pk)


@admin_required
@require_POST
def subscriber_delete(request, subscriber_id: int):
    subscriber = get_object_or_404(Subscriber, pk=subscriber_id)
    services.subscribers_bulk_delete(queryset=Subscriber.objects.filter(pk=subscriber.pk))
    messages.success(request, f"{subscriber.email} deleted.")
    return redirect("subscribers:list")


@personal_data_export_required
def subscriber_gdpr_export(request, subscriber_id: int):
    subscriber = get_object_or_404(Subscriber, pk=subscriber_id)
    data = services.subscriber_export(subscriber=subscriber)
    response = JsonResponse(data, json_dumps_params={"indent": 2, "ensure_ascii": False})
    response["Content-Disposition"] = f'attachment; filename="subscriber-{subscriber.pk}.json"'
    return response


@admin_required
@require_POST
def subscriber_erase(request, subscriber_id: int):
    subscriber = get_object_or_404(Subscriber, pk=subscriber_id, erased_at__isnull=True)
    services.subscriber_erase(subscriber=subscriber)
    messages.success(request, "Personal data erased; the address stays suppressed by its hash.")
    return redirect("subscribers:detail", subscriber.pk)


# --- import -------------------------------------------------------------------------------


@editor_required
def import_upload(request):
    form = ImportUploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            job = import_job_create(file=upload, name=upload.name, created_by=request.user.username)
        except ImportError_ as exc:
            form.add_error("file", str(exc))
        else:
            return redirect("subscribers:import_mapping", job.pk)
    jobs = ImportJob.objects.all()[:10]
    return render(request, "subscribers/import_upload.html", {"form": form, "jobs": jobs})


def _targets() -> list[tuple[str, str]]:
    standard = [
        ("ignore", "— do not import —"),
        ("email", "Email"),
        ("first_name", "First name"),
        ("last_name", "Last name"),
        ("language", "Language"),
        ("timezone", "Time zone"),
    ]
    return [
        *standard,
        *(
            (f"attr:{f.key}", f"{f.label} ({f.get_type_display().lower()})")
            for f in CustomField.objects.all()
        ),
        (NEW_FIELD, "New field…"),
    ]


# A column mapped to a field made on the spot: named and typed next to its select.
NEW_FIELD = "new"
NEW_FIELD_TYPES = [(t.value, t.label) for t in CustomField.Type if t in services.ON_THE_SPOT_TYPES]


def _new_fields(post, header: list[str], mapping: dict[str, str]) -> list[str]:
    """Make the fields asked for on the mapping page and point their columns at them. Returns
    the problems (nothing is made then: the caller's transaction is rolled back)."""
    problems = []
    for index, target in mapping.items():
        if target != NEW_FIELD:
            continue
        column = header[int(index)] or f"column {int(index) + 1}"
        try:
            field = services.custom_field_create(
                label=post.get(f"new_label_{index}", ""), type=post.get(f"new_type_{index}", "")
            )
        except services.CustomFieldError as exc:
            problems.append(f"{column}: {exc}")
        else:
            mapping[index] = f"attr:{field.key}"
    return problems


@editor_required
def import_mapping(request, job_id: int):
    job = get_object_or_404(ImportJob, pk=job_id)
    if job.status != ImportJob.Status.MAPPING:
        return redirect("subscribers:import_detail", job.pk)
    header = job.options.get("header", [])
    form = ImportOptionsForm(request.POST or None)
    targets = _targets()
    valid_targets = {t for t, _ in targets}
    if request.method == "POST":
        mapping = {}
        for index in range(len(header)):
            target = request.POST.get(f"col_{index}", "ignore")
            mapping[str(index)] = target if target in valid_targets else "ignore"
        job.options["mapping"] = dict(mapping)
        if form.is_valid():
            data = form.cleaned_data
            try:
                # The new fields and the import start together, or neither.
                with transaction.atomic():
                    problems = _new_fields(request.POST, header, mapping)
                    if problems:
                        raise ImportError_(" ".join(problems))
                    import_job_start(
                        job=job,
                        mapping=mapping,
                        topics=[t.pk for t in data["topics"]],
                        confirmed=data["confirmed"] == "yes",
                        consent_note=data["consent_note"],
                        update_existing=data["update_existing"] == "yes",
                    )
                    import_job_enqueue(job=job)
            except ImportError_ as exc:
                form.add_error(None, str(exc))
            else:
                return redirect("subscribers:import_detail", job.pk)

    preview = import_preview(job=job)
    columns = [
        {
            "index": i,
            "name": name,
            "target": job.options["mapping"].get(str(i), "ignore"),
            "samples": [row[i] for row in preview[1:] if i < len(row)][:3],
            "new_label": request.POST.get(f"new_label_{i}", ""),
            "new_type": request.POST.get(f"new_type_{i}", CustomField.Type.TEXT),
        }
        for i, name in enumerate(header)
    ]
    return render(
        request,
        "subscribers/import_mapping.html",
        {
            "job": job,
            "form": form,
            "columns": columns,
            "targets": targets,
            "new_field": NEW_FIELD,
            "new_field_types": NEW_FIELD_TYPES,
        },
    )


@viewer_required
def import_detail(request, job_id: int):
    job = get_object_or_404(ImportJob, pk=job_id)
    template = (
        "subscribers/_import_progress.html"
        if request.headers.get("HX-Request")
        else "subscribers/import_detail.html"
    )
    return render(
        request,
        template,
        {
            "job": job,
            "stalled": import_job_stalled(job=job),
            "rejections": job.rejections.all()[:100],
        },
    )


@editor_required
@require_POST
def import_resume(request, job_id: int):
    job = get_object_or_404(ImportJob, pk=job_id)
    if import_job_resume(job=job):
        messages.success(request, "The import was queued again.")
    else:
        messages.info(request, "This import is not stalled: nothing to do.")
    return redirect("subscribers:import_detail", job_id=job.pk)


@personal_data_export_required
def import_rejections_csv(request, job_id: int):
    job = get_object_or_404(ImportJob, pk=job_id)

    # The file's own delimiter and columns, after the line and the reason: fix the rows in a
    # spreadsheet and import the file again.
    delimiter = job.options.get("delimiter", ",")
    return csv_response(
        import_rejection_rows(job, delimiter=delimiter),
        filename=f"import-{job.pk}-rejected.csv",
        delimiter=delimiter,
    )


# --- segments -----------------------------------------------------------------------------


def _builder_fields() -> list[dict]:
    """What the rule builder offers: each field with the operators that fit its type, and for
    choices the label to show for each stored value (a topic's name, not its slug)."""
    topics = list(Topic.objects.order_by("name").values_list("slug", "name"))
    fields: list[dict[str, Any]] = [
        {"field": "status", "label": "Status", "ops": ["eq", "neq"], "kind": "choice",
         "choices": list(Subscriber.Status.values), "labels": dict(Subscriber.Status.choices)},
        {"field": "topic", "label": "Topic", "ops": ["in", "not_in"], "kind": "choice",
         "choices": [slug for slug, _ in topics], "labels": dict(topics)},
        {"field": "source", "label": "Source", "ops": ["eq", "neq"], "kind": "choice",
         "choices": list(Subscriber.Source.values), "labels": dict(Subscriber.Source.choices)},
        {"field": "signup_form", "label": "Signup form", "ops": ["eq"], "kind": "text"},
        {"field": "email", "label": "Email", "ops": ["contains", "ends_with", "eq"],
         "kind": "text"},
        {"field": "first_name", "label": "First name", "ops": ["eq", "neq", "contains", "is_set"],
         "kind": "text"},
        {"field": "last_name", "label": "Last name", "ops": ["eq", "neq", "contains", "is_set"],
         "kind": "text"},
        {"field": "language", "label": "Language", "ops": ["eq", "neq"], "kind": "text"},
        {"field": "created_at", "label": "Joined", "ops": ["within_days", "before", "after"],
         "kind": "date"},
        {"field": "confirmed_at", "label": "Confirmed",
         "ops": ["within_days", "before", "after", "is_set"], "kind": "date"},
    ]  # fmt: skip

    # Fields other apps registered (analytics: human engagement, opens, clicks, score).
    fields += BUILDER_FIELDS.values()
    for f in CustomField.objects.all():
        fields.append(
            {
                "field": f"attr.{f.key}",
                "label": f.label,
                "ops": sorted(OPS_BY_TYPE[f.type]),
                "kind": f.type,
                "choices": f.choices,
            }
        )
    return fields


@viewer_required
def segment_list(request):
    return render(request, "subscribers/segments.html", {"segments": Segment.objects.all()})


@editor_required
def segment_edit(request, segment_id: int | None = None):
    segment = get_object_or_404(Segment, pk=segment_id) if segment_id else Segment()
    initial = {"rules": json.dumps(segment.rules or {"match": "all", "conditions": []})}
    form = SegmentForm(request.POST or None, instance=segment, initial=initial)
    if request.method == "POST" and form.is_valid():
        segment = form.save()
        messages.success(request, f"Segment {segment.name} saved.")
        return redirect("subscribers:segments")
    rules_json = form["rules"].value() or initial["rules"]
    return render(
        request,
        "subscribers/segment_edit.html",
        {
            "form": form,
            "segment": segment,
            "rules_json": rules_json,
            "builder_fields": _builder_fields(),
        },
    )


@editor_required
@require_POST
def segment_delete(request, segment_id: int):
    segment = get_object_or_404(Segment, pk=segment_id)
    segment.delete()
    messages.success(request, f"Segment {segment.name} deleted.")
    return redirect("subscribers:segments")


@viewer_required
@require_POST
def segment_count(request):
    """The live count while a segment is edited (a read, posted only because rules are JSON)."""
    exact = request.POST.get("exact") == "1"
    try:
        rules = json.loads(request.POST.get("rules") or "{}")
        result = segment_live_count(Subscriber.objects.filter(rules_q(rules)), exact=exact)
    except (ValueError, SegmentRuleError) as exc:
        return HttpResponse(f'<span class="text-danger">{_escape(str(exc))}</span>')
    count = result.count
    matches = f"subscriber{pluralize(count)} match{pluralize(count, 'es,')}"
    if not result.estimated:
        return HttpResponse(f"<strong>{count:,}</strong> {matches}")
    if exact:  # the exact count took longer than its budget: the estimate stays
        return HttpResponse(
            f"about <strong>{count:,}</strong> {matches} "
            '<span class="text-body-secondary">(too many to count exactly while editing)</span>'
        )
    # An estimate now; the exact count replaces it when it is ready (this element is swapped
    # out, and the late answer dropped, if the rules change meanwhile).
    follow_up = json.dumps({"rules": json.dumps(rules), "exact": "1"})
    return HttpResponse(
        f'<span hx-post="{reverse("subscribers:segment_count")}" hx-trigger="load" '
        f"hx-vals='{_escape(follow_up)}' hx-swap=\"outerHTML\">"
        f"about <strong>{count:,}</strong> {matches} "
        '<span class="text-body-secondary">(counting exactly…)</span></span>'
    )


def _escape(text: str) -> str:
    return escape(text)


@viewer_required
def segment_detail(request, segment_id: int):
    segment = get_object_or_404(Segment, pk=segment_id)
    try:
        segment_queryset(segment)
    except SegmentRuleError as exc:
        raise Http404(str(exc)) from None
    return redirect(f"{reverse('subscribers:list')}?segment={segment.pk}")


# --- settings: topics and custom fields ---------------------------------------------------


@admin_required
def topic_list(request, topic_id: int | None = None):
    topic = get_object_or_404(Topic, pk=topic_id) if topic_id else None
    form = TopicForm(request.POST or None, instance=topic)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, "Topic saved.")
        return redirect("subscribers:topics")
    return render(
        request,
        "subscribers/topics.html",
        {"form": form, "topic": topic, "topics": Topic.objects.all()},
    )


@admin_required
@require_POST
def topic_delete(request, topic_id: int):
    topic = get_object_or_404(Topic, pk=topic_id)
    topic.delete()
    messages.success(request, f"Topic {topic.name} deleted.")
    return redirect("subscribers:topics")


@admin_required
def custom_field_list(request):
    form = CustomFieldForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, "Custom field added.")
        return redirect("subscribers:custom_fields")
    return render(
        request,
        "subscribers/custom_fields.html",
        {"form": form, "fields": CustomField.objects.all()},
    )


@admin_required
@require_POST
def custom_field_delete(request, field_id: int):
    field = get_object_or_404(CustomField, pk=field_id)
    field.delete()
    messages.success(
        request, f"Custom field {field.label} deleted (values stay on subscribers until edited)."
    )
    return redirect("subscribers:custom_fields")


@viewer_required
def form_list(request):
    return render(request, "subscribers/forms.html", {})
