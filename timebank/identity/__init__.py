"""Identity and access: regions, organisations, people, shops, tokens, authorisation."""
