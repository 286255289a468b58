"""The change feed: domain events written with the changes they describe, then relayed.

- `catalog`: every event type, and the one function that derives a change's events;
- `envelope`: an event as a consumer receives it, masked for the role it is granted;
- `relay`: hands committed events, in order per subject, to the bus and to every consumer.
"""
