"""Messages to subscribers about their bookings (confirmation, change, cancellation, reminder)."""
