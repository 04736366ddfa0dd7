"""Adapters to the services that carry messages (WhatsApp Cloud API, SMS providers).

They speak HTTP to the provider and nothing else: no database, no service layer. The
same code talks to the real service and to wafile's emulators; only the base URL
differs.
"""
