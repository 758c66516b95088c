-- Exchange: an item may ask for a minimum star level (the rating domain's current level, read from
-- rating_volunteers) besides its lifetime hours; 0 asks for none.
ALTER TABLE shop_items
    ADD COLUMN min_star_level smallint NOT NULL DEFAULT 0 CHECK (min_star_level BETWEEN 0 AND 20);
