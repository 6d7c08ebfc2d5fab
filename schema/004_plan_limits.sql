-- Plans as data: the defaults that each plan gives an organisation, and
-- org_settings, the settings that the edge applies once those defaults
-- fill the organisation's own NULL settings. Also the revisions that keep
-- a writer's sync from overwriting a newer change in Redis with an older
-- snapshot.
--
-- humanhours-admin migrate runs this file in one transaction, so it must not
-- contain BEGIN, COMMIT or ROLLBACK.


CREATE TABLE plans (
    plan            text PRIMARY KEY,

    -- Events a second per API key.
    rate_limit      integer NOT NULL CHECK (rate_limit > 0),

    -- Events a month (UTC), included in the price or, with hard_cap, the
    -- most that the edge accepts. NULL means no monthly number at all.
    monthly_events  integer CHECK (monthly_events >= 0),
    hard_cap        boolean NOT NULL,

    -- Audit samples, task-type overrides, custom task types and webhooks.
    pro_features    boolean NOT NULL
);

-- The organisations.plan CHECK of 001_initial.sql names the same four plans.
INSERT INTO plans (plan, rate_limit, monthly_events, hard_cap, pro_features)
VALUES
    ('free',         10,    500, true,  false),
    ('pro',         200,  10000, false, true),
    ('agency',      500,  25000, false, true),
    ('enterprise', 1000,   NULL, false, true);

ALTER TABLE organisations
    ADD CONSTRAINT organisations_plan_fkey
    FOREIGN KEY (plan) REFERENCES plans (plan);


-- humanhours-admin adds 1 to an organisation's revision in every
-- transaction that changes its settings, task types or agent rates, and to
-- the price book's revision in every load. Redis stores the revision of
-- its copy (hh:org:<id>:revision, hh:prices:revision) and keeps the copy
-- when a writer brings an older revision.
ALTER TABLE organisations
    ADD COLUMN revision bigint NOT NULL DEFAULT 0;

CREATE TABLE price_book (
    only_row  boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    revision  bigint NOT NULL
);

INSERT INTO price_book (revision) VALUES (0);


-- One row per organisation with its plan's defaults applied. The writer's
-- sync and humanhours-admin copy these columns into hh:org:<id> in Redis.
CREATE VIEW org_settings AS
SELECT o.id,
       o.plan,
       o.currency,
       o.hourly_rate,
       coalesce(o.rate_limit, p.rate_limit) AS rate_limit,
       coalesce(o.monthly_events, p.monthly_events) AS monthly_events,
       p.hard_cap,
       p.pro_features,
       o.revision
  FROM organisations o
  JOIN plans p ON p.plan = o.plan;
