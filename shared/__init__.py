"""What the services must agree on: event contracts, topic names, settings and small common plumbing."""
