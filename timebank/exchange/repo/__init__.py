"""SQL of the exchange domain: shops and catalogues (:mod:`.shops`), redemption codes
(:mod:`.codes`), redemptions and orders (:mod:`.redemptions`), statements (:mod:`.statements`)."""
