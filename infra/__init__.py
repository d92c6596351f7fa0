"""Infrastructure the domain stands on: settings, the case database, its migrations, and the
loopback mail sink. It imports nothing but `models`, so every layer above may use it."""
