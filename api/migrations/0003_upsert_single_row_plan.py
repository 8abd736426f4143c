"""The upsert function plans a single row as one row; a single upsert returns its subscriber.

PL/pgSQL keeps a generic plan of ``api_subscribers_upsert``'s statement after a few calls,
and a generic plan cannot see how many rows ``jsonb_to_recordset`` gives: it assumes 100,
and for 100 rows hashing the whole subscriber table (a sequential scan) looks cheaper than
100 index probes. Every single upsert then read every subscriber: 2.8 ms of PostgreSQL CPU
at 6,500 subscribers, growing with the list. A one-row call now runs its own copy of the
statement over ``jsonb_to_record`` (known to give one row), planned with index lookups only;
calls with more rows keep the set-based plan the bulk endpoint wants.

``api_subscriber_upsert`` (singular) is the single upsert of POST /subscribers/upsert: the
same statement, then the subscriber as it is now, topics included, in the same call (a
statement of its own inside the function, so it sees what the upsert wrote): the endpoint's
answer costs one round trip instead of two.
"""

from importlib import import_module

from django.db import migrations

COLUMNS = """
    email text, first_name text, last_name text, language text, timezone text,
    attributes jsonb, topics bigint[], has_first boolean, has_last boolean,
    has_language boolean, has_timezone boolean
"""

# What the statement does is described at ``api.services.subscribers_upsert``. {given}: where
# the rows come from.
STATEMENT = """
    WITH given AS (
        SELECT * FROM {given}
    ), suppressed AS (
        -- Left alone, as the CSV import leaves them (by hash: erased addresses match too).
        SELECT given.email FROM given JOIN subscribers_suppression sp
          ON sp.email_hash = encode(sha256(convert_to(given.email, 'UTF8')), 'hex')
    ), src AS (
        SELECT * FROM given WHERE email NOT IN (SELECT email FROM suppressed)
    ), existing AS (
        SELECT s.id, s.erased_at IS NULL AS live, src.*,
            (src.has_first AND src.first_name <> s.first_name)
            OR (src.has_last AND src.last_name <> s.last_name)
            OR (src.has_language AND src.language <> s.language)
            OR (src.has_timezone AND src.timezone <> s.timezone)
            OR NOT s.attributes @> src.attributes AS changed
        FROM src JOIN subscribers_subscriber s ON lower(s.email) = src.email
    ), updated AS (
        UPDATE subscribers_subscriber s SET
            first_name = CASE WHEN e.has_first THEN e.first_name ELSE s.first_name END,
            last_name = CASE WHEN e.has_last THEN e.last_name ELSE s.last_name END,
            language = CASE WHEN e.has_language THEN e.language ELSE s.language END,
            timezone = CASE WHEN e.has_timezone THEN e.timezone ELSE s.timezone END,
            attributes = s.attributes || e.attributes,
            updated_at = p_now
        FROM existing e
        WHERE s.id = e.id AND e.live AND e.changed AND p_update_existing
        RETURNING s.id
    ), inserted AS (
        INSERT INTO subscribers_subscriber (
            email, first_name, last_name, attributes, status, source, source_detail, language,
            timezone, created_at, updated_at
        )
        SELECT email, first_name, last_name, attributes, 'unconfirmed', 'api', p_detail,
               COALESCE(NULLIF(language, ''), 'en'), timezone, p_now, p_now
        FROM src WHERE NOT EXISTS (SELECT 1 FROM existing e WHERE e.email = src.email)
        -- In index order, the unique lower(email) index is filled page by page.
        ORDER BY email
        -- A concurrent request inserted it first: left as it is (reported unchanged).
        ON CONFLICT ((lower(email))) DO NOTHING
        RETURNING id, email
    ), targets AS (
        SELECT id, topics FROM existing WHERE live AND p_update_existing
        UNION ALL
        SELECT i.id, src.topics FROM inserted i JOIN src ON src.email = i.email
    ), subscribed AS (
        INSERT INTO subscribers_subscription (subscriber_id, topic_id, status, created_at, updated_at)
        SELECT targets.id, topic_id, 'active', p_now, p_now
        FROM targets CROSS JOIN unnest(targets.topics) AS topic_id
        ON CONFLICT (subscriber_id, topic_id) DO UPDATE
            SET status = 'active', unsubscribed_at = NULL, updated_at = EXCLUDED.updated_at
            WHERE subscribers_subscription.status <> 'active'
    )
    SELECT id::bigint, email::text, 'created'::text FROM inserted
    UNION ALL
    SELECT e.id::bigint, e.email, CASE WHEN u.id IS NULL THEN 'unchanged' ELSE 'updated' END
    FROM existing e LEFT JOIN updated u ON u.id = e.id
    UNION ALL
    SELECT NULL::bigint, email, 'suppressed'::text FROM suppressed
"""

UPSERT_FUNCTION = f"""
CREATE OR REPLACE FUNCTION api_subscribers_upsert(
  p_rows jsonb, p_detail text, p_now timestamptz, p_update_existing boolean
) RETURNS TABLE (out_id bigint, out_email text, out_outcome text) AS $$
BEGIN
  -- Two statements, two cached plans: one for one row, one for many (see the migration).
  IF jsonb_array_length(p_rows) = 1 THEN
    RETURN QUERY {STATEMENT.format(given=f"jsonb_to_record(p_rows->0) AS t({COLUMNS})")};
  ELSE
    RETURN QUERY {STATEMENT.format(given=f"jsonb_to_recordset(p_rows) AS t({COLUMNS})")};
  END IF;
END $$ LANGUAGE plpgsql;
"""

UPSERT_ONE_FUNCTION = """
CREATE OR REPLACE FUNCTION api_subscriber_upsert(p_row jsonb, p_detail text, p_now timestamptz)
RETURNS TABLE (
  out_outcome text, out_id bigint, out_email text, out_first_name text, out_last_name text,
  out_status text, out_source text, out_language text, out_timezone text, out_attributes jsonb,
  out_topics text[], out_created_at timestamptz, out_updated_at timestamptz,
  out_confirmed_at timestamptz, out_erased boolean
) AS $$
DECLARE
  v_id bigint;
  v_outcome text;
BEGIN
  SELECT u.out_id, u.out_outcome INTO v_id, v_outcome
    FROM api_subscribers_upsert(jsonb_build_array(p_row), p_detail, p_now, true) u;
  IF v_outcome = 'suppressed' THEN
    RETURN QUERY SELECT v_outcome, NULL::bigint, NULL::text, NULL::text, NULL::text, NULL::text,
      NULL::text, NULL::text, NULL::text, NULL::jsonb, NULL::text[], NULL::timestamptz,
      NULL::timestamptz, NULL::timestamptz, NULL::boolean;
    RETURN;
  END IF;
  IF v_id IS NULL THEN
    -- Inserted by a concurrent request between our look and our insert: left as it is.
    v_outcome := 'unchanged';
    SELECT s.id INTO v_id FROM subscribers_subscriber s WHERE lower(s.email) = p_row->>'email';
  END IF;
  -- A statement of its own: it sees the upsert's writes (and a concurrent insert committed).
  RETURN QUERY
    SELECT v_outcome, s.id, s.email::text, s.first_name::text, s.last_name::text,
      s.status::text, s.source::text, s.language::text, s.timezone::text, s.attributes,
      ARRAY(SELECT t.slug::text FROM subscribers_subscription ss
            JOIN subscribers_topic t ON t.id = ss.topic_id
            WHERE ss.subscriber_id = s.id AND ss.status = 'active'
            ORDER BY t.slug),
      s.created_at, s.updated_at, s.confirmed_at, s.erased_at IS NOT NULL
    FROM subscribers_subscriber s WHERE s.id = v_id;
END $$ LANGUAGE plpgsql;
"""


def _previous_function() -> str:
    return import_module("api.migrations.0002_upsert_function").UPSERT_FUNCTION


class Migration(migrations.Migration):
    dependencies = [
        ("api", "0002_upsert_function"),
    ]

    operations = [
        migrations.RunSQL(UPSERT_FUNCTION, _previous_function()),
        migrations.RunSQL(
            UPSERT_ONE_FUNCTION,
            "DROP FUNCTION IF EXISTS api_subscriber_upsert(jsonb, text, timestamptz);",
        ),
    ]
