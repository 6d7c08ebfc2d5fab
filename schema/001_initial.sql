-- The first schema: organisations, API keys, task types and overrides,
-- per-agent hourly rates, the model price book, and stored events.
--
-- humanhours-admin migrate runs this file in one transaction, so it must not
-- contain BEGIN, COMMIT or ROLLBACK.


-- Numbers that the writer mirrors into Redis, where the edge reads them as
-- doubles. numeric also accepts NaN and Infinity, which the upper bound
-- rejects because NaN sorts above every number. The bound also keeps each
-- value far below the largest double.
CREATE DOMAIN nonnegative_amount AS numeric
    CHECK (VALUE >= 0 AND VALUE < 1e15);

CREATE DOMAIN positive_minutes AS numeric
    CHECK (VALUE > 0 AND VALUE < 1e15);

-- Task-type keys are lowercase snake_case, 1 to 64 characters.
CREATE DOMAIN task_type_key AS text
    CHECK (VALUE ~ '^[a-z0-9]+(_[a-z0-9]+)*$' AND char_length(VALUE) <= 64);

CREATE DOMAIN task_category AS text
    CHECK (VALUE IN ('support', 'ops', 'sales', 'legal', 'content',
                     'research', 'data', 'dev'));


CREATE TABLE organisations (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name            text NOT NULL
                    CHECK (name <> '' AND name !~ '[[:cntrl:]]'),
    plan            text NOT NULL DEFAULT 'free'
                    CHECK (plan IN ('free', 'pro', 'agency', 'enterprise')),
    currency        char(3) NOT NULL DEFAULT 'EUR'
                    CHECK (currency ~ '^[A-Z]{3}$'),
    hourly_rate     nonnegative_amount NOT NULL DEFAULT 45,

    -- NULL means the plan's default.
    monthly_events  integer CHECK (monthly_events >= 0),
    rate_limit      integer CHECK (rate_limit > 0),      -- per key, per second

    created_at      timestamptz NOT NULL DEFAULT now()
);


-- The raw key is never stored: only its prefix and the argon2id hash of the
-- peppered key.
CREATE TABLE api_keys (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id        bigint NOT NULL REFERENCES organisations (id),
    prefix        text NOT NULL UNIQUE CHECK (prefix ~ '^[A-Za-z0-9]{8}$'),
    mode          text NOT NULL CHECK (mode IN ('live', 'test')),
    hash          text NOT NULL CHECK (hash LIKE '$argon2id$%'),
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_on  date,
    revoked_at    timestamptz
);

CREATE INDEX api_keys_org_id_idx ON api_keys (org_id);


-- The built-in catalogue, seeded by schema/002_builtin_task_types.sql.
CREATE TABLE task_types (
    key               task_type_key PRIMARY KEY,
    display_name      text NOT NULL CHECK (display_name <> ''),
    category          task_category NOT NULL,
    baseline_minutes  positive_minutes NOT NULL,
    source_note       text NOT NULL CHECK (source_note <> '')
);


-- An organisation's own baselines: an override replaces a built-in task
-- type's baseline, a custom type adds a key of its own. An archived row
-- counts as absent.
CREATE TABLE org_task_types (
    org_id            bigint NOT NULL REFERENCES organisations (id),
    key               task_type_key NOT NULL,
    kind              text NOT NULL CHECK (kind IN ('override', 'custom')),
    display_name      text CHECK (display_name <> ''),
    category          task_category,
    baseline_minutes  positive_minutes NOT NULL,
    archived_at       timestamptz,

    PRIMARY KEY (org_id, key),

    -- An override inherits the built-in name and category when it has none.
    CHECK (kind = 'override'
           OR (display_name IS NOT NULL AND category IS NOT NULL))
);


CREATE TABLE agent_rates (
    org_id       bigint NOT NULL REFERENCES organisations (id),
    agent_id     text NOT NULL
                 CHECK (char_length(agent_id) BETWEEN 1 AND 128),
    hourly_rate  nonnegative_amount NOT NULL,

    PRIMARY KEY (org_id, agent_id)
);


-- Prices per million tokens, in the currency of the organisation that uses
-- them.
CREATE TABLE model_prices (
    model               text PRIMARY KEY
                        CHECK (char_length(model) BETWEEN 1 AND 128),
    input_per_million   nonnegative_amount NOT NULL,
    output_per_million  nonnegative_amount NOT NULL
);


-- One accepted event with every input, resolved and derived value frozen as
-- the edge computed it. Event ids are "evt_" and a ULID, whose first ten
-- characters encode the receipt time. The "C" collation compares bytes, so
-- the primary key also orders events by receipt time.
CREATE TABLE events (
    event_id                text COLLATE "C" PRIMARY KEY
                            CHECK (event_id ~ '^evt_[0-9A-Z]{26}$'),
    org_id                  bigint NOT NULL REFERENCES organisations (id),
    key_id                  bigint NOT NULL REFERENCES api_keys (id),
    test                    boolean NOT NULL,
    agent_id                text NOT NULL,
    task_type               text NOT NULL,
    outcome                 text NOT NULL
                            CHECK (outcome IN ('success', 'failure',
                                               'needs_review')),
    agent_duration_seconds  double precision NOT NULL,
    agent_cost_provided     double precision,     -- the request's agent_cost
    model                   text,
    tokens_in               bigint,
    tokens_out              bigint,

    baseline_minutes        double precision NOT NULL,
    baseline_source         text NOT NULL
                            CHECK (baseline_source IN ('request', 'override',
                                                       'builtin', 'custom')),
    hourly_rate             double precision NOT NULL,
    currency                text NOT NULL,
    input_price             double precision,     -- per million tokens
    output_price            double precision,

    hours_saved             double precision NOT NULL,
    cost_saved              double precision NOT NULL,
    agent_cost              double precision,     -- NULL for cost_source none
    cost_source             text NOT NULL
                            CHECK (cost_source IN ('none', 'provided',
                                                   'computed')),
    net_saved               double precision NOT NULL,

    fingerprint             text NOT NULL,
    metadata                jsonb,
    audit_sample            jsonb,

    occurred_at             timestamptz NOT NULL,
    received_at             timestamptz NOT NULL,
    stored_at               timestamptz NOT NULL DEFAULT now(),

    CHECK ((cost_source = 'none') = (agent_cost IS NULL))
);

CREATE INDEX events_org_id_occurred_at_idx ON events (org_id, occurred_at DESC);
