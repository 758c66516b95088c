-- 团体服务: an activity a group (the organising organisation's team) serves as a group. Its
-- confirmed hours are the group's, not its members': they are credited to the organisation's
-- `group` TIME account (code group_service_confirmed), which the region's rule
-- timebank.group_hours_donation_only lets only donate. Points stay with each member.
ALTER TABLE activities ADD COLUMN group_service boolean NOT NULL DEFAULT false;
