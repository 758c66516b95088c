-- Exchange (积分兑换): shops' terms, catalogues, one-time redemption codes, counter redemptions,
-- online orders, refunds and monthly settlement statements.
--
-- Points move only through the ledger (POINTS): a redemption debits the volunteer's main account and
-- credits the shop's `redemption` account; an order holds the amount (two-phase) until the shop
-- fulfils (posts) or rejects (voids) it; a refund is the ledger's reversal of the redemption's
-- transfer. These tables record what the ledger cannot know: what was bought, the stock, the codes.

-- --------------------------------------------------------------------------------------- shops
-- NULL terms follow the region's rules (points.yuan_per_point, points.refund_window_hours).
ALTER TABLE shops
    ADD COLUMN kind text NOT NULL DEFAULT 'partner' CHECK (kind IN ('love_market', 'partner')),
    ADD COLUMN yuan_per_point numeric(10, 4) CHECK (yuan_per_point >= 0 AND yuan_per_point <= 1000),
    ADD COLUMN refund_window_hours integer CHECK (refund_window_hours BETWEEN 0 AND 8760);

-- ----------------------------------------------------------------------------------- catalogue
CREATE TABLE shop_items (
    id                 uuid PRIMARY KEY DEFAULT tb_uuid7(),
    region_id          uuid NOT NULL REFERENCES regions (id),
    shop_id            uuid NOT NULL REFERENCES shops (id),
    name               text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    description        text NOT NULL DEFAULT '' CHECK (length(description) <= 1000),
    kind               text NOT NULL CHECK (kind IN ('goods', 'transit_topup', 'library_card', 'service')),
    price_points       integer NOT NULL CHECK (price_points BETWEEN 1 AND 1000000),
    stock              integer CHECK (stock >= 0),          -- NULL: unlimited
    limit_quantity     integer CHECK (limit_quantity BETWEEN 1 AND 10000),
    limit_period       text CHECK (limit_period IN ('day', 'week', 'month', 'year')),
    min_lifetime_hours integer NOT NULL DEFAULT 0 CHECK (min_lifetime_hours BETWEEN 0 AND 100000),
    active_from        date,
    active_until       date,
    status             text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'retired')),
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT shop_items_limit_whole CHECK ((limit_quantity IS NULL) = (limit_period IS NULL)),
    CONSTRAINT shop_items_active_dates CHECK (active_until IS NULL OR active_from IS NULL
                                              OR active_until >= active_from)
);
CREATE INDEX shop_items_shop_idx ON shop_items (shop_id, id);
CREATE INDEX shop_items_shop_kind_idx ON shop_items (shop_id, kind, id);

-- ----------------------------------------------------------------------------- redemption codes
-- Only a keyed hash of the digits is stored. One live code per volunteer (a new one voids the
-- old); a code is live until used, voided or past expires_at. Two live codes of a region never
-- share digits (the unique index), so digits name at most one code.
CREATE TABLE redemption_codes (
    id           uuid PRIMARY KEY DEFAULT tb_uuid7(),
    region_id    uuid NOT NULL REFERENCES regions (id),
    volunteer_id uuid NOT NULL REFERENCES volunteers (id),
    actor_kind   text NOT NULL CHECK (actor_kind IN ('volunteer', 'staff')),
    actor_id     uuid NOT NULL,        -- who asked for it: the volunteer, or a proxy (代办)
    code_hash    bytea NOT NULL CHECK (length(code_hash) = 32),
    status       text NOT NULL DEFAULT 'live' CHECK (status IN ('live', 'used', 'void')),
    expires_at   timestamptz NOT NULL,
    used_at      timestamptz,
    used_by_shop uuid REFERENCES shops (id),
    created_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT redemption_codes_used CHECK ((status = 'used') = (used_at IS NOT NULL))
);
CREATE UNIQUE INDEX redemption_codes_live_key ON redemption_codes (region_id, code_hash) WHERE status = 'live';
CREATE INDEX redemption_codes_hash_idx ON redemption_codes (region_id, code_hash, created_at);
CREATE INDEX redemption_codes_volunteer_idx ON redemption_codes (volunteer_id) WHERE status = 'live';

-- ---------------------------------------------------------------------------------- redemptions
-- A counter redemption, or an online order once fulfilled. transfer_id is the ledger transfer that
-- moved the points (posted, or the post of the order's hold); refund_transfer_id its reversal.
CREATE TABLE redemptions (
    id                 uuid PRIMARY KEY DEFAULT tb_uuid7(),
    region_id          uuid NOT NULL REFERENCES regions (id),
    shop_id            uuid NOT NULL REFERENCES shops (id),
    volunteer_id       uuid NOT NULL REFERENCES volunteers (id),
    channel            text NOT NULL CHECK (channel IN ('counter', 'order')),
    code_id            uuid REFERENCES redemption_codes (id),
    order_id           uuid,
    operator_id        uuid NOT NULL,     -- the shop operator (or admin) at the counter
    requested_by_kind  text NOT NULL CHECK (requested_by_kind IN ('volunteer', 'staff')),
    requested_by       uuid NOT NULL,     -- who asked for the code or placed the order (代办: a proxy)
    total_points       integer NOT NULL CHECK (total_points > 0),
    transfer_id        uuid NOT NULL UNIQUE,
    status             text NOT NULL DEFAULT 'completed' CHECK (status IN ('completed', 'refunded')),
    refund_transfer_id uuid UNIQUE,
    refunded_at        timestamptz,
    refunded_by        uuid,
    refund_reason      text CHECK (length(refund_reason) <= 500),
    created_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT redemptions_refund_whole CHECK (
        (status = 'refunded') = (refund_transfer_id IS NOT NULL AND refunded_at IS NOT NULL))
);
CREATE INDEX redemptions_shop_idx ON redemptions (shop_id, created_at, id);
CREATE INDEX redemptions_volunteer_idx ON redemptions (volunteer_id, created_at, id);

-- What a redemption or an order holds (volunteer_id copied for the per-period limits).
CREATE TABLE exchange_lines (
    id            uuid PRIMARY KEY DEFAULT tb_uuid7(),
    region_id     uuid NOT NULL REFERENCES regions (id),
    redemption_id uuid REFERENCES redemptions (id),
    order_id      uuid,
    item_id       uuid NOT NULL REFERENCES shop_items (id),
    volunteer_id  uuid NOT NULL,
    quantity      integer NOT NULL CHECK (quantity BETWEEN 1 AND 1000),
    price_points  integer NOT NULL CHECK (price_points > 0),
    -- counts against the per-period limit: false once refunded, rejected or expired
    counts        boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now(),
    -- an order's lines gain the redemption when the order is fulfilled
    CONSTRAINT exchange_lines_owner CHECK (redemption_id IS NOT NULL OR order_id IS NOT NULL)
);
CREATE INDEX exchange_lines_limit_idx ON exchange_lines (volunteer_id, item_id, created_at) WHERE counts;
CREATE INDEX exchange_lines_redemption_idx ON exchange_lines (redemption_id) WHERE redemption_id IS NOT NULL;
CREATE INDEX exchange_lines_order_idx ON exchange_lines (order_id) WHERE order_id IS NOT NULL;

-- ------------------------------------------------------------------------------------ orders
CREATE TABLE exchange_orders (
    id                 uuid PRIMARY KEY DEFAULT tb_uuid7(),
    region_id          uuid NOT NULL REFERENCES regions (id),
    shop_id            uuid NOT NULL REFERENCES shops (id),
    volunteer_id       uuid NOT NULL REFERENCES volunteers (id),
    requested_by_kind  text NOT NULL CHECK (requested_by_kind IN ('volunteer', 'staff')),
    requested_by       uuid NOT NULL,
    total_points       integer NOT NULL CHECK (total_points > 0),
    hold_id            uuid NOT NULL UNIQUE,
    status             text NOT NULL DEFAULT 'placed'
                       CHECK (status IN ('placed', 'fulfilled', 'rejected', 'expired')),
    expires_at         timestamptz NOT NULL,
    redemption_id      uuid REFERENCES redemptions (id),
    decided_by         uuid,
    decided_at         timestamptz,
    reason             text CHECK (length(reason) <= 500),
    created_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT exchange_orders_decided CHECK ((status = 'placed') = (decided_at IS NULL))
);
ALTER TABLE exchange_lines ADD CONSTRAINT exchange_lines_order_fk FOREIGN KEY (order_id) REFERENCES exchange_orders (id);
ALTER TABLE redemptions ADD CONSTRAINT redemptions_order_fk FOREIGN KEY (order_id) REFERENCES exchange_orders (id);
CREATE INDEX exchange_orders_shop_idx ON exchange_orders (shop_id, created_at, id);
CREATE INDEX exchange_orders_volunteer_idx ON exchange_orders (volunteer_id, created_at, id);
CREATE INDEX exchange_orders_due_idx ON exchange_orders (expires_at) WHERE status = 'placed';

-- --------------------------------------------------------------------------- settlement statements
-- One per shop and month (local to the region); written once, never changed: a correction made
-- later lands in the month in which its ledger transfer was made.
CREATE TABLE shop_statements (
    id                uuid PRIMARY KEY DEFAULT tb_uuid7(),
    region_id         uuid NOT NULL REFERENCES regions (id),
    shop_id           uuid NOT NULL REFERENCES shops (id),
    month             date NOT NULL CHECK (extract(day FROM month) = 1),
    period_start      timestamptz NOT NULL,
    period_end        timestamptz NOT NULL,
    redemption_count  integer NOT NULL CHECK (redemption_count >= 0),
    redeemed_points   bigint NOT NULL CHECK (redeemed_points >= 0),
    refund_count      integer NOT NULL CHECK (refund_count >= 0),
    refunded_points   bigint NOT NULL CHECK (refunded_points >= 0),
    net_points        bigint NOT NULL,
    yuan_per_point    numeric(10, 4) NOT NULL,
    amount_yuan       numeric(14, 2) NOT NULL,
    issued_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (shop_id, month),
    CONSTRAINT shop_statements_net CHECK (net_points = redeemed_points - refunded_points)
);
CREATE INDEX shop_statements_region_idx ON shop_statements (region_id, month);

-- (Its append-only trigger is in sql/functions/shop_statements.sql.)

REVOKE DELETE, TRUNCATE ON shop_items, redemption_codes, redemptions, exchange_lines, exchange_orders,
    shop_statements FROM timebank_app;
REVOKE UPDATE ON shop_statements FROM timebank_app;
