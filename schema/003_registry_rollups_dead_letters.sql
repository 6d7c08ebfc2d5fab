-- The tables that the writer fills besides events: the agent registry
-- (agents and automations) and the daily rollups, both updated in the
-- transaction that inserts the events, and the dead letters for stream
-- entries that cannot be stored.
--
-- humanhours-admin migrate runs this file in one transaction, so it must not
-- contain BEGIN, COMMIT or ROLLBACK.


-- One row per agent id of an organisation. The times are receipt times
-- (events.received_at) of the first and last stored event, and events counts
-- the stored events. An event stored again after a lost acknowledgement is
-- not counted twice, because only inserted rows update the registry.
CREATE TABLE agents (
    org_id      bigint NOT NULL REFERENCES organisations (id),
    agent_id    text NOT NULL,
    first_seen  timestamptz NOT NULL,
    last_seen   timestamptz NOT NULL,
    events      bigint NOT NULL CHECK (events > 0),

    PRIMARY KEY (org_id, agent_id)
);


-- One row per fingerprint: one agent id doing one task type with one model
-- under one API key. The fingerprint is derived from those four values, so
-- they never change for a row.
CREATE TABLE automations (
    org_id       bigint NOT NULL REFERENCES organisations (id),
    fingerprint  text COLLATE "C" NOT NULL
                 CHECK (fingerprint ~ '^[0-9a-f]{32}$'),
    agent_id     text NOT NULL,
    task_type    text NOT NULL,
    model        text,
    key_id       bigint NOT NULL REFERENCES api_keys (id),
    first_seen   timestamptz NOT NULL,
    last_seen    timestamptz NOT NULL,
    events       bigint NOT NULL CHECK (events > 0),

    PRIMARY KEY (org_id, fingerprint)
);


-- Sums of the stored events per organisation, UTC day of occurred_at, agent
-- id and task type. Test-key events and each currency get rows of their own,
-- so that live figures never include test traffic and no sum mixes
-- currencies. agent_cost sums the events whose agent cost is known
-- (cost_source provided or computed); net_saved already subtracts them.
CREATE TABLE daily_rollups (
    org_id       bigint NOT NULL REFERENCES organisations (id),
    day          date NOT NULL,
    agent_id     text NOT NULL,
    task_type    text NOT NULL,
    test         boolean NOT NULL,
    currency     text NOT NULL,

    events       bigint NOT NULL CHECK (events > 0),
    hours_saved  double precision NOT NULL,
    cost_saved   double precision NOT NULL,
    agent_cost   double precision NOT NULL,
    net_saved    double precision NOT NULL,

    PRIMARY KEY (org_id, day, agent_id, task_type, test, currency)
);


-- Stream entries that the writer acknowledged without storing an event:
-- entries that do not parse, entries that Postgres rejects on their own, and
-- entries delivered more often than the writer's HH_MAX_DELIVERIES. payload
-- is the entry's field-value pairs as a JSON object of strings, which hold
-- the event and its resolved values but never an API key or a request body.
-- Bytes that are not UTF-8 appear as U+FFFD, and field values beyond 1 MiB
-- in all are cut, which the error then notes. The ids are copied from the
-- entry when it parses, with no foreign key, because a missing organisation
-- or key can be the reason for the dead letter.
CREATE TABLE dead_letters (
    stream_id    text COLLATE "C" PRIMARY KEY,   -- the hh:events entry id
    event_id     text,
    org_id       bigint,
    key_id       bigint,
    error        text NOT NULL,
    deliveries   integer NOT NULL,   -- XREADGROUP deliveries, 1 when first read
    payload      text NOT NULL,
    received_at  timestamptz NOT NULL,   -- when Redis added the entry
    stored_at    timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX dead_letters_org_id_idx ON dead_letters (org_id);
