"""Local Azure Communication Services Email endpoint with an on-disk inbox."""
