-- Webhooks: endpoints, the delivery outbox and its attempts, the agents
-- already announced, and the weekly digests already queued. Triggers on
-- events queue deliveries in the transaction that inserts the events, and
-- the functions below are what humanhours-writer and humanhours-admin call
-- to claim, finish and queue deliveries.
--
-- humanhours-admin migrate runs this file in one transaction, so it must not
-- contain BEGIN, COMMIT or ROLLBACK.


-- An endpoint receives the event types it subscribed to, for the events of
-- its mode only: live endpoints get live events, test endpoints test events.
-- The secret is sealed with the server key (HH_WEBHOOK_KEY_FILE) and never
-- stored in clear: a version byte, a 24-byte nonce and a libsodium
-- secretbox. For 24 hours after a rotation the previous secret signs too.
CREATE TABLE webhook_endpoints (
    id                     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id                 bigint NOT NULL REFERENCES organisations (id),
    url                    text NOT NULL
                           CHECK (url ~ '^https?://[^[:space:][:cntrl:]]+$'
                                  AND char_length(url) <= 2048),
    event_types            text[] NOT NULL
                           CHECK (cardinality(event_types) > 0
                                  AND event_types <@ ARRAY['event.created',
                                      'agent.first_event', 'weekly.digest']),
    mode                   text NOT NULL CHECK (mode IN ('live', 'test')),
    secret                 bytea NOT NULL,
    previous_secret        bytea,
    previous_secret_until  timestamptz,

    -- failing after 5 deliveries in a row failed, and disabled after 20 or
    -- after a 410 Gone response. A delivered one resets the count.
    status                 text NOT NULL DEFAULT 'active'
                           CHECK (status IN ('active', 'failing', 'disabled')),
    failures               integer NOT NULL DEFAULT 0 CHECK (failures >= 0),
    disabled_reason        text,

    created_at             timestamptz NOT NULL DEFAULT now(),
    removed_at             timestamptz
);

CREATE INDEX webhook_endpoints_org_id_idx ON webhook_endpoints (org_id)
    WHERE removed_at IS NULL;


-- The outbox: one row per message to one endpoint. data is the JSON text of
-- the envelope's data member, stored once, so that every attempt sends the
-- same body. message_id is the envelope's id and the webhook-id header,
-- the same on every attempt, so that receivers can drop a repeat.
--
-- While an attempt is in flight, leased_until and next_attempt_at are the
-- end of its lease. A sender that dies mid-attempt records nothing, so the
-- delivery becomes due again when the lease ends and is sent again: delivery
-- is at least once.
CREATE TABLE webhook_deliveries (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id       text NOT NULL UNIQUE
                     DEFAULT 'msg_'
                             || replace(gen_random_uuid()::text, '-', ''),
    endpoint_id      bigint NOT NULL REFERENCES webhook_endpoints (id),
    type             text NOT NULL
                     CHECK (type IN ('event.created', 'agent.first_event',
                                     'weekly.digest', 'webhook.ping')),
    event_id         text COLLATE "C",       -- the event it announces, if any
    data             text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),

    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'delivered', 'failed',
                                       'cancelled')),
    attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at  timestamptz DEFAULT now(),   -- NULL unless pending
    leased_until     timestamptz,
    last_status      integer,                     -- HTTP status
    last_error       text,
    finished_at      timestamptz
);

CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at)
    WHERE status = 'pending';

CREATE INDEX webhook_deliveries_endpoint_due_idx
    ON webhook_deliveries (endpoint_id, next_attempt_at)
    WHERE status = 'pending';

CREATE INDEX webhook_deliveries_leased_idx ON webhook_deliveries (endpoint_id)
    WHERE status = 'pending' AND leased_until IS NOT NULL;

CREATE INDEX webhook_deliveries_endpoint_id_idx
    ON webhook_deliveries (endpoint_id, id);


-- One row per attempt, written when the attempt starts and completed when
-- its result is known. An attempt whose sender died keeps finished_at NULL
-- until the next claim of its delivery marks it interrupted.
CREATE TABLE webhook_attempts (
    delivery_id  bigint NOT NULL REFERENCES webhook_deliveries (id),
    attempt      integer NOT NULL CHECK (attempt > 0),
    sender       text NOT NULL,      -- writer consumer name, or the admin
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    http_status  integer,
    latency_ms   integer,
    error        text,
    response     text,               -- the start of the response body

    PRIMARY KEY (delivery_id, attempt)
);


-- The agent ids of each organisation and mode that agent.first_event has
-- covered. The primary key makes concurrent writers agree on which one saw
-- an agent first: the second insert waits for the first transaction and
-- then inserts nothing. Filled from the events stored before this
-- migration, so that old agents are not announced.
CREATE TABLE webhook_agents_seen (
    org_id    bigint NOT NULL REFERENCES organisations (id),
    test      boolean NOT NULL,
    agent_id  text NOT NULL,

    PRIMARY KEY (org_id, test, agent_id)
);

INSERT INTO webhook_agents_seen (org_id, test, agent_id)
SELECT DISTINCT org_id, test, agent_id FROM events;


-- One row per organisation and week whose weekly.digest is queued. week is
-- the Monday (UTC) on which the digest is due, at 09:00 UTC.
CREATE TABLE webhook_digests (
    org_id     bigint NOT NULL REFERENCES organisations (id),
    week       date NOT NULL,
    queued_at  timestamptz NOT NULL DEFAULT now(),

    PRIMARY KEY (org_id, week)
);


-- JSON text written as common/hh_event.c writes the track response, so that
-- the data of event.created has the bytes of the 201 response.

-- A JSON string. Quote and backslash are escaped, and control characters
-- as \u00XX.
CREATE FUNCTION webhook_json_string(value text)
RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    escaped  text;
    code     integer;
BEGIN
    IF value IS NULL THEN
        RETURN 'null';
    END IF;

    escaped := replace(replace(value, '\', '\\'), '"', '\"');

    IF escaped ~ '[\x01-\x1f]' THEN
        FOR code IN 1 .. 31 LOOP
            escaped := replace(escaped, chr(code),
                               '\u' || lpad(to_hex(code), 4, '0'));
        END LOOP;
    END IF;

    RETURN '"' || escaped || '"';
END
$$;


-- A double rounded to a fixed number of decimals as hh_event.c rounds it:
-- from the exact binary value, ties away from zero, and "-0.00" written as
-- "0.00". A cast to numeric would round to 15 digits first, which gives
-- 2.68 for the double nearest 2.675, whose exact value is below the tie and
-- rounds to 2.67. The double is taken apart into mantissa * 2^exponent, and
-- the rounding is done in exact integer numeric arithmetic.
CREATE FUNCTION webhook_json_fixed(value double precision, decimals integer)
RETURNS text LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
    bits       bigint;
    exponent   integer;
    mantissa   numeric;
    scaled     numeric;
    divisor    numeric;
    quotient   numeric;
    remainder  numeric;
    digits     text;
BEGIN
    IF value = 'NaN' OR value = 'Infinity' OR value = '-Infinity' THEN
        RETURN 'null';
    END IF;

    bits := ('x' || encode(float8send(value), 'hex'))::bit(64)::bigint;
    exponent := ((bits >> 52) & 2047)::integer;
    mantissa := (bits & 4503599627370495)::numeric;       -- 52 bits

    -- Subnormals have no implicit leading 1 and the exponent of 1.
    IF exponent = 0 THEN
        exponent := 1;
    ELSE
        mantissa := mantissa + 4503599627370496;          -- 2^52
    END IF;

    exponent := exponent - 1075;
    scaled := mantissa * 10::numeric ^ decimals;

    IF exponent >= 0 THEN
        quotient := scaled * 2::numeric ^ exponent;

    ELSE
        divisor := 2::numeric ^ (-exponent);
        quotient := div(scaled, divisor);
        remainder := scaled - quotient * divisor;

        IF 2 * remainder >= divisor THEN
            quotient := quotient + 1;
        END IF;
    END IF;

    digits := trunc(quotient)::text;

    IF length(digits) <= decimals THEN
        digits := lpad(digits, decimals + 1, '0');
    END IF;

    RETURN CASE WHEN bits < 0 AND quotient <> 0 THEN '-' ELSE '' END
           || left(digits, length(digits) - decimals)
           || CASE WHEN decimals > 0 THEN '.' || right(digits, decimals)
                   ELSE '' END;
END
$$;


-- A double as "%.15g" writes it when that reads back as the same double.
-- NOTE: where 15 digits are not enough, hh_event.c writes "%.17g" and this
-- function the shortest text that reads back. A double that needs exactly
-- 16 digits is so written with one digit fewer here, with the same value.
CREATE FUNCTION webhook_json_shortest(value double precision)
RETURNS text LANGUAGE plpgsql IMMUTABLE STRICT
SET extra_float_digits = 0 AS $$
DECLARE
    text15  text;
BEGIN
    IF value = 'NaN' OR value = 'Infinity' OR value = '-Infinity' THEN
        RETURN 'null';
    END IF;

    IF value = 0 THEN
        RETURN '0';
    END IF;

    -- With extra_float_digits = 0, Postgres writes "%.15g".
    text15 := value::text;

    IF text15::double precision = value THEN
        RETURN text15;
    END IF;

    -- Any positive setting writes the shortest exact text.
    PERFORM set_config('extra_float_digits', '1', true);

    RETURN value::text;
END
$$;


-- Baseline minutes: whole minutes keep ".0", as in "4.0".
CREATE FUNCTION webhook_json_minutes(value double precision)
RETURNS text LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT CASE
           WHEN value = trunc(value) AND abs(value) < 1e15
           THEN trunc(value)::bigint::text || '.0'
           ELSE webhook_json_shortest(value)
           END
$$;


CREATE FUNCTION webhook_json_time(value timestamptz)
RETURNS text LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT '"' || to_char(value AT TIME ZONE 'UTC',
                          'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') || '"'
$$;


-- The track response of a stored event, with the members, order and
-- rounding of the module's 201 response.
CREATE FUNCTION webhook_track_response(e events)
RETURNS text LANGUAGE sql STABLE AS $$
    SELECT '{"event_id":' || webhook_json_string(e.event_id)
        || ',"agent_id":' || webhook_json_string(e.agent_id)
        || ',"task_type":' || webhook_json_string(e.task_type)
        || ',"outcome":' || webhook_json_string(e.outcome)
        || ',"resolved_baseline_minutes":'
        || coalesce(webhook_json_minutes(e.baseline_minutes), 'null')
        || ',"resolved_baseline_source":'
        || webhook_json_string(e.baseline_source)
        || ',"resolved_hourly_rate":'
        || coalesce(webhook_json_shortest(e.hourly_rate), 'null')
        || ',"currency":' || webhook_json_string(e.currency)
        || ',"agent_duration_seconds":'
        || coalesce(webhook_json_shortest(e.agent_duration_seconds), 'null')
        || ',"hours_saved":'
        || coalesce(webhook_json_fixed(e.hours_saved, 3), 'null')
        || ',"cost_saved":'
        || coalesce(webhook_json_fixed(e.cost_saved, 2), 'null')
        || ',"agent_cost":'
        || coalesce(webhook_json_fixed(e.agent_cost, 2), 'null')
        || ',"resolved_cost_source":' || webhook_json_string(e.cost_source)
        || ',"net_saved":'
        || coalesce(webhook_json_fixed(e.net_saved, 2), 'null')
        || ',"occurred_at":'
        || coalesce(webhook_json_time(e.occurred_at), 'null')
        || '}'
$$;


-- The endpoints of an organisation that receive a type in a mode now.
-- Webhooks need a plan with the Pro features (schema/004_plan_limits.sql).
CREATE FUNCTION webhook_receivers(for_org bigint, for_test boolean,
    for_type text)
RETURNS SETOF bigint LANGUAGE sql STABLE AS $$
    SELECT w.id
      FROM webhook_endpoints w
      JOIN organisations o ON o.id = w.org_id
      JOIN plans p ON p.plan = o.plan
     WHERE w.org_id = for_org
       AND w.mode = CASE WHEN for_test THEN 'test' ELSE 'live' END
       AND for_type = ANY (w.event_types)
       AND w.status <> 'disabled'
       AND w.removed_at IS NULL
       AND p.pro_features
     ORDER BY w.id
$$;


-- Queues event.created for every inserted event and agent.first_event for
-- the first event of each agent id new to its organisation and mode, in the
-- transaction of the insert. The transition table holds only the rows
-- really inserted, so an event that ON CONFLICT DO NOTHING skipped queues
-- nothing. Agents are recorded in sorted order, so that two writers whose
-- batches share new agents take those row locks in the same order and do
-- not deadlock over them.
CREATE FUNCTION webhook_events_inserted()
RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO webhook_deliveries (endpoint_id, type, event_id, data)
    SELECT r.endpoint_id, 'event.created', e.event_id,
           webhook_track_response(e)
      FROM inserted_events e
     CROSS JOIN LATERAL webhook_receivers(e.org_id, e.test, 'event.created')
           AS r (endpoint_id)
     ORDER BY e.event_id, r.endpoint_id;

    WITH firsts AS (
        SELECT DISTINCT ON (org_id, test, agent_id)
               org_id, test, agent_id, event_id
          FROM inserted_events
         ORDER BY org_id, test, agent_id, event_id
    ), announced AS (
        INSERT INTO webhook_agents_seen (org_id, test, agent_id)
        SELECT org_id, test, agent_id
          FROM firsts
         ORDER BY org_id, test, agent_id
            ON CONFLICT DO NOTHING
        RETURNING org_id, test, agent_id
    )
    INSERT INTO webhook_deliveries (endpoint_id, type, event_id, data)
    SELECT r.endpoint_id, 'agent.first_event', e.event_id,
           '{"agent_id":' || webhook_json_string(e.agent_id)
           || ',"event":' || webhook_track_response(e) || '}'
      FROM announced a
      JOIN firsts f USING (org_id, test, agent_id)
      JOIN inserted_events e ON e.event_id = f.event_id
     CROSS JOIN LATERAL webhook_receivers(a.org_id, a.test,
                                          'agent.first_event')
           AS r (endpoint_id)
     ORDER BY e.event_id, r.endpoint_id;

    RETURN NULL;
END
$$;

CREATE TRIGGER webhook_events_inserted
    AFTER INSERT ON events
    REFERENCING NEW TABLE AS inserted_events
    FOR EACH STATEMENT EXECUTE FUNCTION webhook_events_inserted();


-- One member of top_agents (name_key agent_id) or top_task_types
-- (task_type).
CREATE FUNCTION webhook_digest_entry(name_key text, name text, events numeric,
    hours_saved double precision, cost_saved double precision,
    agent_cost double precision, net_saved double precision)
RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT '{' || webhook_json_string(name_key)
        || ':' || webhook_json_string(name)
        || ',"events":' || events
        || ',"hours_saved":' || webhook_json_fixed(hours_saved, 3)
        || ',"cost_saved":' || webhook_json_fixed(cost_saved, 2)
        || ',"agent_cost":' || webhook_json_fixed(agent_cost, 2)
        || ',"net_saved":' || webhook_json_fixed(net_saved, 2)
        || '}'
$$;


-- The rows that a weekly.digest sums for one organisation and mode over
-- [period_start, period_end), which are whole UTC days. These are the rows
-- of daily_rollups, which the writer keeps by UTC day of occurred_at, so
-- that the digest equals the rollups. Where that table does not exist, they
-- are the events themselves, one row each.
CREATE FUNCTION webhook_digest_rows(for_org bigint, for_test boolean,
    period_start timestamptz, period_end timestamptz)
RETURNS TABLE (agent_id text, task_type text, events bigint,
               hours_saved double precision, cost_saved double precision,
               agent_cost double precision, net_saved double precision)
LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
BEGIN
    IF to_regclass('daily_rollups') IS NOT NULL THEN
        RETURN QUERY
        SELECT r.agent_id, r.task_type, r.events, r.hours_saved,
               r.cost_saved, r.agent_cost, r.net_saved
          FROM daily_rollups r
         WHERE r.org_id = for_org
           AND r.test = for_test
           AND r.day >= (period_start AT TIME ZONE 'UTC')::date
           AND r.day < (period_end AT TIME ZONE 'UTC')::date;
        RETURN;
    END IF;

    RETURN QUERY
    SELECT e.agent_id, e.task_type, 1::bigint, e.hours_saved, e.cost_saved,
           coalesce(e.agent_cost, 0), e.net_saved
      FROM events e
     WHERE e.org_id = for_org
       AND e.test = for_test
       AND e.occurred_at >= period_start
       AND e.occurred_at < period_end;
END
$$;


-- The data of a weekly.digest: the sums of webhook_digest_rows(), and the
-- 5 agent ids and the 5 task types that saved the most hours. The sums of
-- the unrounded values are rounded as the track response is. agent_cost
-- sums the events whose agent cost is known.
CREATE FUNCTION webhook_digest_data(for_org bigint, for_test boolean,
    period_start timestamptz, period_end timestamptz)
RETURNS text LANGUAGE sql STABLE AS $$
    WITH period AS (
        SELECT *
          FROM webhook_digest_rows(for_org, for_test, period_start,
                                   period_end)
    ), totals AS (
        SELECT coalesce(sum(events), 0) AS events,
               coalesce(sum(hours_saved), 0) AS hours_saved,
               coalesce(sum(cost_saved), 0) AS cost_saved,
               coalesce(sum(agent_cost), 0) AS agent_cost,
               coalesce(sum(net_saved), 0) AS net_saved
          FROM period
    ), agents AS (
        SELECT agent_id AS name, sum(events) AS events,
               sum(hours_saved) AS hours_saved, sum(cost_saved) AS cost_saved,
               sum(agent_cost) AS agent_cost, sum(net_saved) AS net_saved
          FROM period
         GROUP BY agent_id
         ORDER BY sum(hours_saved) DESC, agent_id
         LIMIT 5
    ), task_types AS (
        SELECT task_type AS name, sum(events) AS events,
               sum(hours_saved) AS hours_saved, sum(cost_saved) AS cost_saved,
               sum(agent_cost) AS agent_cost, sum(net_saved) AS net_saved
          FROM period
         GROUP BY task_type
         ORDER BY sum(hours_saved) DESC, task_type
         LIMIT 5
    )
    SELECT '{"organisation_id":' || o.id
        || ',"mode":' || CASE WHEN for_test THEN '"test"' ELSE '"live"' END
        || ',"period_start":' || webhook_json_time(period_start)
        || ',"period_end":' || webhook_json_time(period_end)
        || ',"currency":' || webhook_json_string(o.currency::text)
        || ',"events":' || t.events
        || ',"hours_saved":' || webhook_json_fixed(t.hours_saved, 3)
        || ',"cost_saved":' || webhook_json_fixed(t.cost_saved, 2)
        || ',"agent_cost":' || webhook_json_fixed(t.agent_cost, 2)
        || ',"net_saved":' || webhook_json_fixed(t.net_saved, 2)
        || ',"top_agents":['
        || coalesce((SELECT string_agg(webhook_digest_entry('agent_id',
                                           a.name, a.events, a.hours_saved,
                                           a.cost_saved, a.agent_cost,
                                           a.net_saved),
                                       ',' ORDER BY a.hours_saved DESC, a.name)
                       FROM agents a), '')
        || '],"top_task_types":['
        || coalesce((SELECT string_agg(webhook_digest_entry('task_type',
                                           k.name, k.events, k.hours_saved,
                                           k.cost_saved, k.agent_cost,
                                           k.net_saved),
                                       ',' ORDER BY k.hours_saved DESC, k.name)
                       FROM task_types k), '')
        || ']}'
      FROM organisations o, totals t
     WHERE o.id = for_org
$$;


-- Queues the weekly.digest that is due at the given time, once per
-- organisation and week: the digest of week W is due on Monday W at 09:00
-- UTC and covers the 7 UTC days before that Monday. An organisation gets
-- it when its plan has the Pro features and an endpoint subscribed before
-- the digest was due. The webhook_digests row, inserted in the same
-- transaction as the deliveries, keeps a second call from queueing it
-- again. A digest missed while no writer ran is queued when one runs again,
-- for the latest week only. Returns the number of deliveries queued.
CREATE FUNCTION webhook_queue_digests(due_check timestamptz)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    monday  timestamptz;
    due_at  timestamptz;
    queued  integer;
BEGIN
    monday := date_trunc('week', due_check AT TIME ZONE 'UTC')
              AT TIME ZONE 'UTC';

    IF due_check < monday + interval '9 hours' THEN
        monday := monday - interval '7 days';
    END IF;

    due_at := monday + interval '9 hours';

    WITH subscribed AS (
        SELECT w.id, w.org_id, w.mode
          FROM webhook_endpoints w
          JOIN organisations o ON o.id = w.org_id
          JOIN plans p ON p.plan = o.plan
         WHERE 'weekly.digest' = ANY (w.event_types)
           AND w.status <> 'disabled'
           AND w.removed_at IS NULL
           AND w.created_at <= due_at
           AND p.pro_features
    ), queued_orgs AS (
        INSERT INTO webhook_digests (org_id, week)
        SELECT DISTINCT org_id, (monday AT TIME ZONE 'UTC')::date
          FROM subscribed
         ORDER BY 1
            ON CONFLICT DO NOTHING
        RETURNING org_id
    )
    INSERT INTO webhook_deliveries (endpoint_id, type, data)
    SELECT s.id, 'weekly.digest',
           webhook_digest_data(s.org_id, s.mode = 'test',
                               monday - interval '7 days', monday)
      FROM queued_orgs q
      JOIN subscribed s ON s.org_id = q.org_id
     ORDER BY s.id;

    GET DIAGNOSTICS queued = ROW_COUNT;

    RETURN queued;
END
$$;


-- Claims up to max_deliveries due deliveries for one sender: each gets its
-- next attempt number, an attempt row and a lease, and the claim commits
-- before anything is sent. Rows that another sender is claiming are
-- skipped (FOR UPDATE SKIP LOCKED), so several writers share the work. An
-- endpoint's row stays locked while its attempts in flight are counted and
-- claimed, so that it never has more than per_endpoint of them over all
-- senders. A delivery whose last allowed attempt was interrupted fails.
CREATE FUNCTION webhook_claim(sender text, max_deliveries integer,
    max_attempts integer, per_endpoint integer, lease interval)
RETURNS TABLE (delivery_id bigint, attempt integer, message_id text,
               type text, created_at text, data text, endpoint_id bigint,
               org_id bigint, url text, secret bytea, previous_secret bytea)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    exhausted  record;
BEGIN
    FOR exhausted IN
        SELECT d.id, d.attempts
          FROM webhook_deliveries d
         WHERE d.status = 'pending'
           AND d.attempts >= max_attempts
           AND d.next_attempt_at <= now()
         ORDER BY d.id
           FOR UPDATE SKIP LOCKED
    LOOP
        PERFORM webhook_finish(exhausted.id, exhausted.attempts, NULL, NULL,
                               'interrupted: the sender stopped before the '
                               'result was recorded', NULL, 'failed', NULL);
    END LOOP;

    RETURN QUERY
    WITH endpoints AS (
        SELECT w.id, w.org_id, w.url, w.secret,
               CASE WHEN w.previous_secret_until > now()
                    THEN w.previous_secret END AS previous_secret,
               per_endpoint
               - (SELECT count(*)
                    FROM webhook_deliveries f
                   WHERE f.endpoint_id = w.id
                     AND f.status = 'pending'
                     AND f.leased_until > now()) AS room
          FROM webhook_endpoints w
         WHERE w.id IN (SELECT d.endpoint_id
                          FROM webhook_deliveries d
                         WHERE d.status = 'pending'
                           AND d.next_attempt_at <= now())
           AND w.status <> 'disabled'
           AND w.removed_at IS NULL
           FOR NO KEY UPDATE OF w SKIP LOCKED
    ), due AS (
        -- The oldest due deliveries of each endpoint, so that a backlog at
        -- one endpoint does not hold up the others.
        SELECT c.id, c.endpoint_id, c.next_attempt_at
          FROM endpoints e
         CROSS JOIN LATERAL (
               SELECT d.id, d.endpoint_id, d.next_attempt_at
                 FROM webhook_deliveries d
                WHERE d.endpoint_id = e.id
                  AND d.status = 'pending'
                  AND d.next_attempt_at <= now()
                  AND d.attempts < max_attempts
                ORDER BY d.next_attempt_at, d.id
                LIMIT per_endpoint
                  FOR UPDATE OF d SKIP LOCKED) c
         WHERE e.room > 0
    ), picked AS (
        SELECT ranked.id
          FROM (SELECT due.id, due.endpoint_id, due.next_attempt_at,
                       row_number() OVER (PARTITION BY due.endpoint_id
                                          ORDER BY due.next_attempt_at, due.id)
                       AS n
                  FROM due) ranked
          JOIN endpoints e ON e.id = ranked.endpoint_id
         WHERE ranked.n <= e.room
         ORDER BY ranked.next_attempt_at, ranked.id
         LIMIT max_deliveries
    ), claimed AS (
        UPDATE webhook_deliveries d
           SET attempts = d.attempts + 1,
               leased_until = now() + lease,
               next_attempt_at = now() + lease
          FROM picked
         WHERE d.id = picked.id
        RETURNING d.id, d.attempts, d.message_id, d.type, d.created_at,
                  d.data, d.endpoint_id
    ), interrupted AS (
        UPDATE webhook_attempts a
           SET finished_at = now(),
               error = 'interrupted: the sender stopped before the result '
                       'was recorded'
          FROM claimed c
         WHERE a.delivery_id = c.id
           AND a.finished_at IS NULL
    ), started AS (
        INSERT INTO webhook_attempts (delivery_id, attempt, sender)
        SELECT c.id, c.attempts, sender
          FROM claimed c
    )
    SELECT c.id, c.attempts, c.message_id, c.type,
           to_char(c.created_at AT TIME ZONE 'UTC',
                   'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
           c.data, e.id, e.org_id, e.url, e.secret, e.previous_secret
      FROM claimed c
      JOIN endpoints e ON e.id = c.endpoint_id
     ORDER BY c.id;
END
$$;


-- Records the result of one attempt and applies it. outcome is delivered
-- (a 2xx), retry (a failure with attempts left: the next one is due after
-- retry_in), failed (a failure of the last attempt), or gone (410 Gone,
-- which disables the endpoint). A failed delivery adds one to the
-- endpoint's failures, which marks it failing at 5 and disables it at 20;
-- a delivered one resets them. Disabling cancels the endpoint's pending
-- deliveries. Pings from humanhours-admin change no endpoint. Returns the
-- endpoint's status afterwards, or NULL when the delivery had moved on to
-- another attempt or was cancelled meanwhile, in which case only the
-- attempt row is written.
CREATE FUNCTION webhook_finish(delivery bigint, attempt_number integer,
    status_code integer, latency integer, failure text, response_start text,
    outcome text, retry_in interval)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    endpoint  bigint;
    kind      text;
    result    text;
BEGIN
    IF outcome NOT IN ('delivered', 'retry', 'failed', 'gone') THEN
        RAISE EXCEPTION 'webhook_finish: invalid outcome "%"', outcome;
    END IF;

    UPDATE webhook_attempts
       SET finished_at = now(), http_status = status_code,
           latency_ms = latency, error = failure, response = response_start
     WHERE delivery_id = delivery
       AND attempt = attempt_number
       AND finished_at IS NULL;

    UPDATE webhook_deliveries
       SET status = CASE outcome WHEN 'delivered' THEN 'delivered'
                                 WHEN 'retry' THEN 'pending'
                                 ELSE 'failed' END,
           next_attempt_at = CASE WHEN outcome = 'retry'
                                  THEN now() + retry_in END,
           leased_until = NULL,
           last_status = status_code,
           last_error = failure,
           finished_at = CASE WHEN outcome <> 'retry' THEN now() END
     WHERE id = delivery
       AND attempts = attempt_number
       AND status = 'pending'
    RETURNING endpoint_id, type INTO endpoint, kind;

    IF NOT FOUND THEN
        RETURN NULL;
    END IF;

    IF kind = 'webhook.ping' OR outcome = 'retry' THEN
        SELECT w.status INTO result FROM webhook_endpoints w
         WHERE w.id = endpoint;
        RETURN result;
    END IF;

    IF outcome = 'delivered' THEN
        UPDATE webhook_endpoints
           SET failures = 0,
               status = CASE WHEN status = 'failing' THEN 'active'
                             ELSE status END
         WHERE id = endpoint
        RETURNING status INTO result;

        RETURN result;
    END IF;

    UPDATE webhook_endpoints
       SET failures = failures + 1,
           status = CASE WHEN outcome = 'gone' OR failures + 1 >= 20
                         THEN 'disabled'
                         WHEN failures + 1 >= 5 AND status = 'active'
                         THEN 'failing'
                         ELSE status END,
           disabled_reason = CASE
                         WHEN status = 'disabled' THEN disabled_reason
                         WHEN outcome = 'gone'
                         THEN 'the endpoint answered 410 Gone'
                         WHEN failures + 1 >= 20
                         THEN '20 deliveries in a row failed'
                         END
     WHERE id = endpoint
    RETURNING status INTO result;

    IF result = 'disabled' THEN
        UPDATE webhook_deliveries
           SET status = 'cancelled', next_attempt_at = NULL,
               leased_until = NULL, finished_at = now(),
               last_error = 'cancelled: the endpoint is disabled'
         WHERE endpoint_id = endpoint
           AND status = 'pending';
    END IF;

    RETURN result;
END
$$;
