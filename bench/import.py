"""Import 1,000,000 CSV rows (3 custom attributes, 0.5% bad rows) through the UI's code path.

Prints one JSON line: rows/s, peak RSS, the import's summary and the seconds of each phase.
Needs DATABASE_URL (PostgreSQL); it empties the subscriber tables of that database first.
"""

import json
import os
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nofailmail.settings")

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.core.files import File  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

ROWS = int(os.environ.get("BENCH_ROWS", "1000000"))


def generate(path: Path) -> None:
    rng = random.Random(7)
    plans = ["free", "pro", "team"]
    with path.open("w", encoding="utf-8") as f:
        f.write("email,first_name,last_name,company,score,plan\n")
        for i in range(ROWS):
            if i % 200 == 199:  # 0.5% bad rows: malformed address, bad number, or a duplicate
                kind = i % 3
                if kind == 0:
                    f.write(f"broken-address-{i},X,Y,Acme,1,free\n")
                elif kind == 1:
                    f.write(f"bad.score.{i}@example.com,X,Y,Acme,lots,free\n")
                else:
                    f.write(f"user{i - 1}@example.com,Dup,Licate,Acme,1,free\n")
                continue
            f.write(
                f"user{i}@example{i % 50}.com,First{i % 997},Last{i % 1009},"
                f"Company {i % 5000},{rng.randint(0, 1000)},{plans[i % 3]}\n"
            )


def main() -> None:
    if connection.vendor != "postgresql":
        sys.exit("bench/import.py needs DATABASE_URL pointing at PostgreSQL")
    call_command("migrate", verbosity=0)
    from subscribers.importing import import_job_create, import_run
    from subscribers.models import CustomField, ImportJob, Topic

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE subscribers_subscriber, subscribers_subscription,"
            " subscribers_consentrecord, subscribers_importrejection, subscribers_importjob,"
            " subscribers_suppression CASCADE"
        )
    CustomField.objects.update_or_create(key="company", defaults={"label": "Company"})
    CustomField.objects.update_or_create(key="score", defaults={"label": "Score", "type": "number"})
    CustomField.objects.update_or_create(
        key="plan",
        defaults={"label": "Plan", "type": "choice", "choices": ["free", "pro", "team"]},
    )
    topic, _ = Topic.objects.get_or_create(slug="bench", defaults={"name": "Bench"})
    with tempfile.TemporaryDirectory() as tmp:
        settings.MEDIA_ROOT = tmp
        source = Path(tmp) / "people.csv"
        generate(source)
        with source.open("rb") as f:
            job = import_job_create(
                file=File(f, name="people.csv"),
                name="people.csv",
                topics=[topic.pk],
                confirmed=True,
                consent_note="Bench: confirmed at signup",
            )
        ImportJob.objects.filter(pk=job.pk).update(status=ImportJob.Status.QUEUED)
        started = time.perf_counter()
        job = import_run(job=job)
        elapsed = time.perf_counter() - started
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "bench": "import",
                "rows": job.rows_read,
                "seconds": round(elapsed, 2),
                "rows_per_second": round(job.rows_read / elapsed),
                "peak_rss_mb": round(peak_kb / 1024, 1),
                "created": job.created,
                "rejected": job.rejected,
                "status": job.status,
                # Seconds per phase. Parsing runs in its own thread beside the merge:
                # wait_for_parser is the part of it the merge did not hide.
                "phase_seconds": job.phase_seconds,
                "target_rows_per_second": 50000,
                "target_peak_rss_mb": 300,
            }
        )
    )


if __name__ == "__main__":
    main()
