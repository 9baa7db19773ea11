"""Layer 2: the asyncio interface server. Never imports Django."""

__all__: list[str] = []
