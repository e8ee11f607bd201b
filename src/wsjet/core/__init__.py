"""Sans-I/O core of wsjet: no asyncio, sockets, TLS or clocks in here."""
