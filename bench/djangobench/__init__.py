"""Consumer code shared by the two benchmark Django projects (bayou and Channels).

The classes are built from the framework's ``AsyncWebsocketConsumer`` so both
projects run byte-for-byte the same consumer logic; only the import differs.
"""
