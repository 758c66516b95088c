-- Referrals (推荐新志愿者, rule points.referral_points): a volunteer may name, when registering,
-- the volunteer who brought them in (same region). The referrer is rewarded once, when the new
-- volunteer's first service is confirmed, at the rule's value in force then; the reward row is
-- written in the transaction that posts the points, so no referral is rewarded twice. A row with
-- no transfer records a referral settled while the rule was 0 (never rewarded later).

ALTER TABLE volunteers
    ADD COLUMN referred_by uuid,
    ADD CONSTRAINT volunteers_referred_by_other CHECK (referred_by IS NULL OR referred_by <> id);

CREATE INDEX volunteers_referred_idx ON volunteers (region_id, id) WHERE referred_by IS NOT NULL;

CREATE TABLE referral_rewards (
    region_id    uuid NOT NULL REFERENCES regions (id),
    referred_id  uuid NOT NULL,
    referrer_id  uuid NOT NULL,
    points       integer NOT NULL CHECK (points >= 0),
    transfer_id  uuid,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (region_id, referred_id),
    CONSTRAINT referral_rewards_transfer CHECK ((points = 0) = (transfer_id IS NULL))
);
CREATE INDEX referral_rewards_referrer_idx ON referral_rewards (region_id, referrer_id, created_at);
GRANT SELECT, INSERT ON referral_rewards TO timebank_app;
