"""The brand console and the shopper demo page: a static front end over the public API."""
