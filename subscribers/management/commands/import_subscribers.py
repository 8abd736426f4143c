from pathlib import Path

from django.core.files import File
from django.core.management.base import BaseCommand, CommandError

from subscribers.importing import ImportError_, import_job_create, import_run
from subscribers.models import ImportJob, Topic


class Command(BaseCommand):
    help = "Import subscribers from a CSV file (the same code path as the dashboard import)."

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--topic", action="append", default=[], help="topic slug (repeat)")
        parser.add_argument("--confirmed", action="store_true", help="rows count as confirmed")
        parser.add_argument("--consent-note", default="", help="how they consented (recorded)")
        parser.add_argument("--no-update", action="store_true", help="leave existing ones alone")

    def handle(self, *args, **options):
        path = Path(options["file"])
        if not path.is_file():
            raise CommandError(f"{path} is not a file")
        topics = []
        for slug in options["topic"]:
            topic = Topic.objects.filter(slug=slug).first()
            if topic is None:
                raise CommandError(f"There is no topic {slug!r}")
            topics.append(topic.pk)
        consent = options["consent_note"] or (
            f"Imported as confirmed from {path.name} on the command line."
            if options["confirmed"]
            else ""
        )
        try:
            with path.open("rb") as f:
                job = import_job_create(
                    file=File(f, name=path.name),
                    name=path.name,
                    topics=topics,
                    confirmed=options["confirmed"],
                    consent_note=consent,
                    update_existing=not options["no_update"],
                    created_by="manage.py",
                )
        except ImportError_ as exc:
            raise CommandError(str(exc)) from None
        if "email" not in job.options["mapping"].values():
            raise CommandError(
                f"No column looks like the email address: {', '.join(job.options['header'])}"
            )
        ImportJob.objects.filter(pk=job.pk).update(status=ImportJob.Status.QUEUED)
        job = import_run(job=job)
        if job.status == ImportJob.Status.FAILED:
            raise CommandError(job.error)
        out = self.stdout
        out.write(f"Import #{job.pk} of {path.name}: {job.rows_read} rows read")
        out.write(f"  created:    {job.created}")
        out.write(f"  updated:    {job.updated}")
        out.write(f"  unchanged:  {job.unchanged}")
        out.write(f"  suppressed: {job.suppressed} (skipped)")
        out.write(f"  rejected:   {job.rejected}")
        for warning in job.warnings:
            out.write(f"  warning: {warning}")
        for rejection in job.rejections.all()[:20]:
            out.write(f"  line {rejection.line}: {rejection.reason}")
        if job.rejected > 20:
            out.write(f"  ... and {job.rejected - 20} more (see the dashboard)")
