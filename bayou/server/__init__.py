"""Layer 2: the asyncio interface server. Never imports Django."""
